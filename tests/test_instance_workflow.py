"""End-to-end: instance segmentation (Mask R-CNN, COCO AP) through the real Snakefile on the ModaNet
look-alike at toy size, original vs rembg; plus the config/schema side of the instance task."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from fashion_rembg import choices
from fashion_rembg.config import AXES, task_experiments
from fashion_rembg.datasets.store import read_manifest
from fashion_rembg.errors import ConfigError
from fashion_rembg.evaluation.coco_eval import rescore
from fashion_rembg.models.detectors import INSTANCE_ARCHS
from fashion_rembg.paths import pretrained_file
from fashion_rembg.reporting.aggregate import ap_resamples
from fashion_rembg.reporting.loading import run_ap_matches
from fashion_rembg.reporting.stats import paired_ap_delta

from workflow_helpers import ROOT, planned_jobs, snakemake, tiny_config

SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
INSTANCE = {"dataset": "modanet", "seeds": [0], "grid": {"variant": ["original", "rembg"], "epochs": 1}}


def instance_config():
    """Only the instance task, on the smallest demo that still has train/val/test images."""
    config = tiny_config()
    config["demo"].update(fs14_per_class=5, modanet_train=16, modanet_val=4, sod_train=16)
    config["saliency"]["standin"]["epochs"] = 2
    config["classification"]["enabled"] = False
    config["segmentation"]["enabled"] = False
    config["instance"] = INSTANCE
    return config


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    work = tmp_path_factory.mktemp("instance_e2e")
    (work / "tiny.yaml").write_text(yaml.safe_dump(instance_config()))
    plan = planned_jobs(snakemake(work, "-n").stdout)
    assert plan["train_instance"] == 2, plan
    assert plan["figure_per_class_ap"] == 1 and plan["figure_instance_examples"] == 1, plan
    assert "train_segmenter" not in plan and "train_classifier" not in plan, plan
    snakemake(work)
    return work


@pytest.mark.e2e
def test_instance_runs_end_to_end(workdir):
    results = workdir / "results"
    store = results / "data" / "modanet"
    # The instance store is aligned with the semantic store row for row; drops are counted.
    meta = json.loads((store / "instances.meta.json").read_text())
    images = np.load(store / "images.npy", mmap_mode="r")
    manifest = read_manifest(store / "manifest.tsv")
    assert meta["images"] == len(images) == len(manifest) and meta["instances"] > 0
    assert all(isinstance(n, int) for n in meta["dropped"].values())
    quarantine_md = (results / "tables" / "quarantine.md").read_text()
    assert "### Instance stores" in quarantine_md
    assert f"| modanet | {meta['images']} | {meta['instances']} |" in quarantine_md
    runs = sorted((results / "runs" / "instance").glob("*/seed-0/metrics.json"))
    assert len(runs) == 2
    for path in runs:
        document = json.loads(path.read_text())
        own = document["metrics"]
        assert document["experiment"]["task"] == "instance" and 0.0 <= own["segm_ap"] <= 1.0
        assert own["model_settings"]["mask_head_convs"] == [64, 64]  # toy-sized store: TOY_HEADS
        for cond in document["cross"]:  # every condition's COCO files re-score to metrics.json's AP
            folder = path.parent / "coco" / cond["key"]
            for iou_type in ("segm", "bbox"):
                results_file = folder / f"results_{iou_type}.json"
                if json.loads(results_file.read_text()):
                    assert rescore(folder / "ground_truth.json", results_file, iou_type)["AP"] == \
                        cond["metrics"][f"{iou_type}_ap"]
        with np.load(path.parent / "predictions.npz") as npz:
            assert len(npz["ids"]) == (manifest["split"] == "test").sum()
            assert npz[f"quality_{npz['conditions'][0]}"].shape == npz["ids"].shape
    summary = pd.read_csv(results / "tables" / "summary.csv")
    rembg = summary[(summary["task"] == "instance") & (summary["variant"] == "rembg")]
    assert len(rembg) == 1 and rembg[["delta", "ci_low", "ci_high", "p_value"]].notna().all().all()
    assert rembg["primary_metric"].tolist() == ["segm_ap"]
    # The CI and p are those of Δ segm AP itself: the same statistics recomputed from the two runs'
    # re-scorable COCO files (loading.run_ap_matches) give the table's numbers.
    (row,) = rembg.to_dict("records")
    matches = {}
    for path in runs:
        with np.load(path.parent / "predictions.npz") as npz:
            own = str(npz["conditions"][0])
        matches[path.parent.parent.name] = run_ap_matches(path.parent / "predictions.npz", own)
    (original,) = [m for name, m in matches.items() if "-original-" in name]
    (rembg_run,) = [m for name, m in matches.items() if "-rembg-" in name]
    boot, perm = ap_resamples([original], [rembg_run], 2000, 9999)
    assert (boot, perm) == (1000, 999)  # a toy test set: the budget allows all of them
    expected = paired_ap_delta([original], [rembg_run], n_boot=boot, n_perm=perm, seed=0)
    assert row["delta"] == pytest.approx(expected.delta, abs=1e-6)
    assert (row["ci_low"], row["ci_high"], row["p_value"]) == pytest.approx(
        (expected.ci_low, expected.ci_high, expected.p_value))
    assert "ci_delta" not in summary.columns
    # One epoch on 16 images: run health must flag a run whose val segm AP never rose above 0.01.
    (history,) = (results / "runs" / "instance").glob("*-rembg-*/seed-0/history.csv")
    learnt = pd.read_csv(history)["val_score"].max() > 0.01
    assert rembg["health"].tolist() in ([["ok"], ["collapsed"]] if learnt else [["collapsed"]])
    md = (results / "tables" / "summary.md").read_text()
    assert "## Instance segmentation (modanet)" in md and "Δ segm AP [95 % CI]" in md
    assert "re-pools them into COCO AP" in md
    cross = pd.read_csv(results / "tables" / "cross_condition.csv")
    assert set(cross[cross["task"] == "instance"]["test_variant"]) == {"original", "rembg"}
    for name in ("variant_bars", "instance_per_class_ap", "instance_examples"):
        with Image.open(results / "figures" / f"{name}.png") as img:
            assert img.width > 200 and img.height > 100


def test_instance_choices_are_the_schema_and_the_builders():
    defs = SCHEMA["definitions"]
    assert defs["instance_arch_axis"]["anyOf"][0]["enum"] == list(choices.INSTANCE_ARCHS)
    assert defs["instance_init_axis"]["anyOf"][0]["enum"] == list(choices.INSTANCE_INITS)
    assert set(defs["inst_axis_names"]["enum"]) == set(AXES["instance"])
    assert list(choices.INSTANCE_ARCHS) == list(INSTANCE_ARCHS)


def test_instance_section_is_opt_in_and_checked():
    config = tiny_config()
    assert task_experiments(config, "instance") == []  # no section: no instance runs
    config["instance"] = dict(INSTANCE, grid={"arch": "maskrcnn_resnet50_fpn_v2", "init": "coco"})
    (exp,) = task_experiments(config, "instance")
    assert exp["augment"] == "none" and exp["optimizer"] == "sgd"
    assert pretrained_file(config, exp).endswith("hub/checkpoints/maskrcnn_resnet50_fpn_v2_coco-73cbd019.pth")
    config["instance"] = dict(INSTANCE, grid={"init": "coco"})  # the light archs have no COCO weights
    with pytest.raises(ConfigError, match="init: coco"):
        task_experiments(config, "instance")
    config["instance"] = dict(INSTANCE, grid={"augment": "flip"})
    with pytest.raises(ConfigError, match="augment"):
        task_experiments(config, "instance")
