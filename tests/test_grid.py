"""Experiment grids: product, exclude/include rows, canonical specs, stable ids, conditions."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from fashion_rembg.choices import AUGMENTATIONS, augment_settings
from fashion_rembg.config import (
    evaluation_conditions,
    expand_task,
    experiment_runs,
    experiment_table,
)
from fashion_rembg.errors import ConfigError
from fashion_rembg.paths import condition_images, pretrained_file
from fashion_rembg.preflight import missing_pretrained, standin_weights

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


def load(name: str) -> dict:
    config = yaml.safe_load((ROOT / "config" / name).read_text())
    validate(config, str(SCHEMA))
    return config


def base(grid=None, **section) -> dict:
    """A demo config whose classification section is replaced; segmentation and instance off."""
    config = load("config.yaml")
    config["classification"] = {"dataset": "fashionstyle14", "seeds": [0, 1], "grid": grid or {}, **section}
    config["segmentation"] = {"enabled": False}
    config["instance"] = {"enabled": False}
    config["controls"]["enabled"] = False  # tests/test_controls.py
    validate(config, str(SCHEMA))
    return config


def ids(config) -> list[str]:
    return [e["id"] for e, _ in expand_task(config, "classification")]


def test_lists_expand_as_a_product_in_config_order():
    config = base({"arch": ["shallow_cnn", "resnet18"], "variant": ["original", "rembg"], "lr": [0.1, 0.01]})
    exps = [e for e, _ in expand_task(config, "classification")]
    assert len(exps) == 8
    assert [(e["arch"], e["variant"], e["lr"]) for e in exps[:3]] == [
        ("shallow_cnn", "original", 0.1), ("shallow_cnn", "original", 0.01), ("shallow_cnn", "rembg", 0.1),
    ]  # fmt: skip
    assert len(set(ids(config))) == 8
    assert all(seeds == [0, 1] for _, seeds in expand_task(config, "classification"))
    assert len(experiment_runs(config)) == 16


def test_axes_that_do_not_apply_collapse_instead_of_duplicating():
    config = base({"arch": ["shallow_cnn", "resnet18", "vgg11"], "blocks": [2, 3], "batch_norm": [True, False],
                   "variant": ["original", "rembg"], "fill": ["black", "white"]})  # fmt: skip
    exps = [e for e, _ in expand_task(config, "classification")]
    # shallow: 2 blocks × 2 bn × (original + 2 rembg fills); resnet: 3; vgg: 2 bn × 3.
    assert len(exps) == 12 + 3 + 6
    resnet = [e for e in exps if e["arch"] == "resnet18"]
    assert all(e["blocks"] is None and e["width"] is None and e["batch_norm"] is None for e in resnet)
    originals = [e for e in exps if e["variant"] == "original"]
    assert all(e["sod"] is None and e["fill"] is None for e in originals)
    rembg = [e for e in exps if e["variant"] == "rembg"]
    assert {e["sod"] for e in rembg} == {"demo-sod"}  # saliency.model is the default


def test_exclude_rows_drop_matching_combinations():
    grid = {"arch": ["shallow_cnn", "resnet18"], "init": ["scratch", "imagenet"], "augment": ["none", "flip"]}
    with pytest.raises(ConfigError, match=r"classification.grid.*shallow_cnn.*exclude"):
        expand_task(base(grid), "classification")
    exclude = [{"arch": "shallow_cnn", "init": "imagenet"}, {"augment": "none", "init": ["imagenet"]}]
    config = base(grid, exclude=exclude)
    combos = {(e["arch"], e["init"], e["augment"]) for e, _ in expand_task(config, "classification")}
    assert combos == {
        ("shallow_cnn", "scratch", "none"), ("shallow_cnn", "scratch", "flip"),
        ("resnet18", "scratch", "none"), ("resnet18", "scratch", "flip"), ("resnet18", "imagenet", "flip"),
    }  # fmt: skip


def test_include_rows_add_sub_grids_with_their_own_seeds_and_merge_duplicates():
    config = base(
        {"arch": "shallow_cnn", "variant": ["original", "rembg"]},
        include=[{"augment": ["none", "randaugment"], "variant": "original", "seeds": [5]},
                 {"variant": "original", "seeds": [1, 2]}],  # the grid's own original experiment: seeds merge
    )  # fmt: skip
    rows = expand_task(config, "classification")
    assert len(rows) == 4
    by_aug = {(e["augment"], e["variant"]): seeds for e, seeds in rows}
    assert by_aug[("flip", "original")] == [0, 1, 2]
    assert by_aug[("flip", "rembg")] == [0, 1]
    assert by_aug[("none", "original")] == [5] and by_aug[("randaugment", "original")] == [5]


def test_ids_are_readable_stable_and_unique():
    config = base({"arch": ["shallow_cnn", "resnet18"], "variant": ["original", "rembg", "oracle"]})
    table = experiment_table(config)
    for exp_id, exp in table.items():
        assert re.fullmatch(r"[A-Za-z0-9_\-]+", exp_id)
        assert exp_id.startswith(f"fashionstyle14-{exp['arch']}")
        assert exp["variant"] in exp_id and exp["augment"] in exp_id and exp["init"] in exp_id
        assert re.search(r"-[0-9a-f]{6}$", exp_id)
    assert any("-rembg-demo_sod-black-" in i for i in table)
    assert any("-oracle-black-" in i for i in table)
    # Growing the grid (new axis values, include rows) leaves every existing id alone...
    grown = base({"arch": ["shallow_cnn", "resnet18", "vgg11"], "variant": ["original", "rembg", "oracle"],
                  "augment": ["flip", "none"]}, include=[{"lr": 0.5}])  # fmt: skip
    assert set(table) < set(experiment_table(grown))
    # ...and ids differing only in a non-prefix value stay unique through the hash.
    lrs = base({"lr": [0.1, 0.01]})
    assert len(set(ids(lrs))) == 2 and ids(lrs)[0][:-6] == ids(lrs)[1][:-6]


def test_changing_one_experiment_changes_only_its_id():
    grid = {"arch": ["shallow_cnn", "resnet18"], "variant": ["original", "rembg"]}
    row = {"arch": "shallow_cnn", "augment": "none", "variant": "original"}
    before = ids(base(grid, include=[{**row, "epochs": 4}]))
    after = ids(base(grid, include=[{**row, "epochs": 5}]))
    assert len(set(before) - set(after)) == 1 and len(set(after) - set(before)) == 1
    # Changing a shared value changes them all (and reruns them all).
    assert set(ids(base({**grid, "lr": 0.5}))).isdisjoint(ids(base(grid)))


def test_bad_values_name_the_key():
    cases = [
        ({"augment": "mixup"}, {}, r"classification.grid.augment: 'mixup'"),
        ({"epochs": 0}, {}, r"classification.grid.epochs"),
        ({"foo": 1}, {}, r"classification.grid: unknown axis \['foo'\]"),
        ({}, {"include": [{"lr": -1}]}, r"classification.include\[0\].lr"),
        ({}, {"exclude": [{"colour": "red"}]}, r"classification.exclude\[0\]: unknown axis"),
        ({"variant": "rembg", "fill": "purple"}, {}, r"classification.grid.fill: unknown fill 'purple'"),
        ({"variant": "rembg", "sod": "oracle"}, {}, r"classification.grid.sod.*variant: oracle"),
        ({"input_size": [8, 8]}, {}, r"classification.grid.input_size"),
        ({"arch": "shallow_cnn", "init": "imagenet"}, {}, r"no torchvision ImageNet weights"),
        ({"arch": "squeezenet_nope"}, {}, r"grid.arch: unknown classifier architecture 'squeezenet_nope'"),
        ({}, {"include": [{"seeds": [1, 1]}]}, r"include\[0\].seeds: repeated"),
    ]
    for grid, section, pattern in cases:
        config = load("config.yaml")
        config["classification"] = {"dataset": "fashionstyle14", "seeds": [0], "grid": grid, **section}
        with pytest.raises(ConfigError, match=pattern):
            expand_task(config, "classification")


def test_randaugment_spellings_share_an_id():
    by_spelling = {s: ids(base({"augment": s})) for s in ("randaugment", "randaugment-n2-m9", "randaugment-n1-m9")}
    assert by_spelling["randaugment"] == by_spelling["randaugment-n2-m9"] != by_spelling["randaugment-n1-m9"]
    assert all("-randaugment_n1_m9-" in i for i in by_spelling["randaugment-n1-m9"])
    with pytest.raises(ConfigError, match=r"classification\.grid\.augment: 'randaugment-n99': RandAugment num_ops"):
        expand_task(base({"augment": "randaugment-n99"}), "classification")


def test_oracle_needs_true_masks():
    config = base({"variant": ["original", "oracle"]})
    assert {e["variant"] for e, _ in expand_task(config, "classification")} == {"original", "oracle"}
    config["datasets"]["fashionstyle14"]["truth"] = None
    message = r"variant oracle needs true foreground masks \(datasets.fashionstyle14.truth\)"
    with pytest.raises(ConfigError, match=message):
        expand_task(config, "classification")


def test_segmentation_grid_rules():
    config = load("config.yaml")
    config["segmentation"]["grid"].update(input_size=[96, 64], init="imagenet", encoder="resnet34")
    (exp,) = {e["id"]: e for e, _ in expand_task(config, "segmentation") if e["variant"] == "original"}.values()
    assert exp["id"].startswith("modanet-unet-resnet34-imagenet-") and exp["input_size"] == [96, 64]
    for grid, pattern in [
        ({"input_size": [100, 64]}, "multiples of 32"),
        ({"init": "imagenet", "encoder": "mit_b0"}, "resnet"),
    ]:
        bad = copy.deepcopy(config)
        bad["segmentation"]["grid"].update(grid)
        with pytest.raises(ConfigError, match=pattern):
            expand_task(bad, "segmentation")


def test_test_conditions_and_image_paths():
    config = load("config.yaml")
    table = experiment_table(config)
    white = next(e for e in table.values() if e["variant"] == "rembg" and e["fill"] == "white")
    conds = evaluation_conditions(config, white)
    assert [c["key"] for c in conds] == ["rembg-demo_sod_bin-white", "original", "rembg-demo_sod-black", "oracle-black"]
    assert [condition_images("fashionstyle14", c) for c in conds] == [
        "results/rembg/fashionstyle14/demo-sod-bin/white/images.npy",
        "results/data/fashionstyle14/images.npy",
        "results/rembg/fashionstyle14/demo-sod/black/images.npy",
        "results/rembg/fashionstyle14/oracle/black/images.npy",
    ]
    original = next(e for e in table.values() if e["variant"] == "original")
    assert [c["key"] for c in evaluation_conditions(config, original)][0] == "original"  # own condition first, once
    assert len(evaluation_conditions(config, original)) == 3


def test_pretrained_files_standins_and_missing_messages(tmp_path):
    config = load("config.yaml")
    table = experiment_table(config)
    imagenet = [e for e in table.values() if e["init"] == "imagenet"]
    assert {e["variant"] for e in imagenet} == {"original", "rembg"}  # the paper's deep case, both conditions
    (path,) = {pretrained_file(config, e) for e in imagenet}
    assert path == "resources/torch-demo/hub/checkpoints/resnet18-f37072fd.pth"
    assert standin_weights(config) == {path: "resnet18"}
    assert missing_pretrained(config) == []  # the demo writes stand-ins
    paper = load("paper.yaml")
    paper["compute"]["torch_home"] = str(tmp_path)
    problems = "\n".join(missing_pretrained(paper))
    for name in ("vgg11-8a719046.pth", "vgg11_bn-6002323d.pth", "resnet50-11ad3fa6.pth", "resnet34-b627a593.pth"):
        assert f"{tmp_path}/hub/checkpoints/{name}" in problems
        assert f"https://download.pytorch.org/models/{name}" in problems
    paper["compute"]["pretrained_standin"] = True
    with pytest.raises(ConfigError, match="demo only"):
        standin_weights(paper)


def test_demo_config_covers_every_axis():
    config = load("config.yaml")
    cls = [e for e, _ in expand_task(config, "classification")]
    seen = {axis: {repr(e[axis]) for e in cls} for axis in cls[0] if axis not in ("id", "task", "dataset")}
    assert {"'shallow_cnn'", "'resnet18'"} <= seen["arch"]
    assert seen["init"] == {"'scratch'", "'imagenet'"}
    assert seen["variant"] == {"'original'", "'rembg'", "'oracle'"}
    assert len(seen["sod"] - {"None"}) >= 2 and len(seen["fill"] - {"None"}) >= 2  # rembg sub-axes
    # Every augmentation but colour jitter: its hue shifts scramble the look-alikes' colour-coded styles
    # (an SGD run with it stayed underfit, train top-1 0.48); test_augment.py covers it.
    assert set(AUGMENTATIONS) - {"color_jitter"} == {augment_settings(a.strip("'"))[0] for a in seen["augment"]}
    assert {"True", "False"} <= seen["batch_norm"]
    for axis in ("dropout", "label_smoothing", "weight_decay", "optimizer", "schedule", "early_stopping",
                 "input_size", "width", "blocks", "lr", "epochs"):  # fmt: skip
        assert len(seen[axis]) >= 2, axis
    assert {s for _, seeds in expand_task(config, "classification") for s in seeds} == {0, 1}
    # Instance segmentation: one paired comparison, the light Mask R-CNN on the Fashionpedia look-alike.
    inst = expand_task(config, "instance")
    assert {e["variant"] for e, _ in inst} == {"original", "rembg"} and all(seeds == [0] for _, seeds in inst)
    assert {(e["dataset"], e["arch"], e["init"]) for e, _ in inst} == {("fashionpedia", "maskrcnn_resnet18_fpn",
                                                                        "scratch")}
    assert config["datasets"]["fashionpedia"]["classes"] == "garments"
    assert len(experiment_runs(config)) <= 30  # toy size: the demo stays a few minutes


def test_paper_config_expresses_the_comparisons():
    config = load("paper.yaml")
    rows = expand_task(config, "classification")
    exps = [e for e, _ in rows]
    assert len([s for _, seeds in rows for s in seeds]) >= 300 and all(len(s) >= 3 for _, s in rows)
    shallow = [e for e in exps if e["arch"] == "shallow_cnn"]
    assert {e["batch_norm"] for e in shallow} == {True, False} and {e["init"] for e in shallow} == {"scratch"}
    for arch in ("vgg11", "vgg16", "resnet18", "resnet50"):
        assert {e["init"] for e in exps if e["arch"] == arch} == {"scratch", "imagenet"}
    assert {"none", "flip", "crop_flip"} <= {e["augment"] for e in exps}
    assert {e["variant"] for e in exps} == {"original", "rembg"}

    def key(e):
        return tuple((k, repr(v)) for k, v in e.items() if k not in ("id", "variant", "sod", "fill"))

    # Every configuration is run on both variants: the comparison is always paired.
    by_config = {}
    for e in exps:
        by_config.setdefault(key(e), set()).add(e["variant"])
    assert all(v == {"original", "rembg"} for v in by_config.values())
