"""Your own data: `datasets.<name>` entries of kind imagefolder (classification) and coco (segmentation).

Prepare on tiny layouts built here, bad layouts table-driven (each a clear error or a quarantine
row), start-up checks and dry runs, the raw-photo readers, and an end-to-end run of the Snakefile
with one ImageFolder and one COCO dataset (demo stand-in saliency model).
"""
from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image
from snakemake.utils import validate

from fashion_rembg.config import expand_task
from fashion_rembg.datasets.cocoseg import prepare_coco
from fashion_rembg.datasets.imagefolder import prepare_imagefolder
from fashion_rembg.datasets.own import own_datasets
from fashion_rembg.datasets.photos import StorePhotos
from fashion_rembg.datasets.sources import plan
from fashion_rembg.errors import ConfigError, DataError

from raw_fixtures import OWN_CLASSES, make_imagefolder, make_own_coco
from test_hostile_inputs import digest
from workflow_helpers import copy_run, planned_jobs, snakemake, tiny_config

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
SPLIT = {"val_fraction": 0.2, "test_fraction": 0.2, "seed": 0}
SIZE = (32, 32)


def read_tables(out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    return (pd.read_csv(out / "manifest.tsv", sep="\t", keep_default_na=False),
            pd.read_csv(out / "quarantine.tsv", sep="\t", keep_default_na=False))


# ---------------------------------------------------------------------------------- imagefolder
def test_imagefolder_stratified_split_is_seeded_and_per_class(tmp_path):
    root = make_imagefolder(tmp_path / "photos")
    before = digest(root)
    summary = prepare_imagefolder("mine", root, tmp_path / "a", SIZE, SPLIT)
    prepare_imagefolder("mine", root, tmp_path / "b", SIZE, SPLIT, workers=2)
    assert summary == {"images": 30, "classes": 3, "quarantined": 0, "splits": {"test": 6, "train": 18, "val": 6}}
    manifest, _ = read_tables(tmp_path / "a")
    # every class in every split (2 of 10 per class in val and test), torchvision's class order
    per_class = manifest.groupby(["label", "split"]).size()
    assert per_class.to_dict() == {(c, s): n for c in OWN_CLASSES for s, n in (("test", 2), ("train", 6), ("val", 2))}
    assert json.loads((tmp_path / "a" / "classes.json").read_text())["classes"] == list(OWN_CLASSES)
    assert (manifest["label_idx"] == manifest["label"].map(list(OWN_CLASSES).index)).all()
    for name in ("images.npy", "manifest.tsv"):  # workers do not change a byte
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    other = prepare_imagefolder("mine", root, tmp_path / "c", SIZE, SPLIT | {"seed": 1})
    assert other["splits"] == summary["splits"]
    assert list(read_tables(tmp_path / "c")[0]["split"]) != list(manifest["split"])
    assert digest(root) == before  # raw data read-only


def test_imagefolder_split_lists_with_and_without_header(tmp_path):
    root = make_imagefolder(tmp_path / "photos")
    (root / "train.csv").write_text("path,comment\n" + "".join(f"{c}/{i:02d}.{'png' if i % 3 == 0 else 'jpg'},x\n"
                                                              for c in OWN_CLASSES for i in range(6)))
    (root / "test.txt").write_text("".join(f"{c}/{i:02d}.jpg\n" for c in OWN_CLASSES for i in (7, 8)))
    lists = {"train": "train.csv", "test": str(root / "test.txt")}  # relative to root, or absolute
    summary = prepare_imagefolder("mine", root, tmp_path / "out", SIZE, {**SPLIT, "val_fraction": 0.34}, lists)
    # 6 per class listed for train: 2 carved out for val (stratified); test as listed; the rest unused
    assert summary["splits"] == {"test": 6, "train": 12, "val": 6}
    manifest, quarantine = read_tables(tmp_path / "out")
    assert set(manifest.loc[manifest["split"] == "test", "source"]) == {f"{c}/{i:02d}.jpg" for c in OWN_CLASSES
                                                                      for i in (7, 8)}
    assert quarantine.empty


# Bad ImageFolder content → (what to do to the layout, the quarantine reason it must give)
IMAGEFOLDER_QUARANTINE = {
    "unreadable image": (lambda r: (r / "bags" / "03.jpg").write_bytes(b"\xff\xd8 not a jpeg"), "bags/03.jpg",
                         "undecodable image"),
    "zero-byte image": (lambda r: (r / "shoes" / "01.jpg").write_bytes(b""), "shoes/01.jpg", "zero-byte file"),
    "not an image": (lambda r: (r / "dresses" / "notes.txt").write_text("hi"), "dresses/notes.txt",
                     "not an image file"),
    "link out of the root": (lambda r: os.symlink(r.parent / "secret.jpg", r / "bags" / "link.jpg"), "bags/link.jpg",
                             "leads outside"),
}


@pytest.mark.parametrize("case", IMAGEFOLDER_QUARANTINE)
def test_imagefolder_bad_files_become_quarantine_rows(tmp_path, case):
    root = make_imagefolder(tmp_path / "photos")
    Image.new("RGB", (40, 40), (255, 0, 255)).save(tmp_path / "secret.jpg")
    act, source, reason = IMAGEFOLDER_QUARANTINE[case]
    act(root)
    before = digest(root)
    prepare_imagefolder("mine", root, tmp_path / "out", SIZE, SPLIT)
    manifest, quarantine = read_tables(tmp_path / "out")
    row = quarantine[quarantine["source"] == source]
    assert len(row) == 1 and reason in row["reason"].iloc[0], quarantine
    assert source not in set(manifest["source"])
    assert digest(root) == before


# Bad split-list rows → quarantine reason
LIST_ROWS = {"../secret.jpg": "refused", "bags/99.jpg": "no such image", "hats/01.jpg": "<class>/<file>",
             "bags/01.jpg": "listed again"}


def test_imagefolder_bad_split_list_rows_are_quarantined(tmp_path):
    root = make_imagefolder(tmp_path / "photos")
    rows = [f"{c}/{i:02d}.jpg" for c in OWN_CLASSES for i in (1, 2, 4, 5)] + list(LIST_ROWS)
    (root / "train.txt").write_text("\n".join(rows) + "\n")
    (root / "test.txt").write_text("".join(f"{c}/{i:02d}.jpg\n" for c in OWN_CLASSES for i in (7, 8)))
    prepare_imagefolder("mine", root, tmp_path / "out", SIZE, SPLIT,
                        {"train": str(root / "train.txt"), "test": str(root / "test.txt")})
    _, quarantine = read_tables(tmp_path / "out")
    for source, reason in LIST_ROWS.items():
        reasons = list(quarantine.loc[quarantine["source"] == source, "reason"])
        assert len(reasons) == 1 and reason in reasons[0], (source, quarantine)


# Layouts that cannot be a classification dataset → the error text (raised by prepare and at start-up)
IMAGEFOLDER_ERRORS = {
    "missing root": (lambda r: None, "does not exist; expected a folder with one sub-folder per class"),
    "empty folder": (lambda r: r.mkdir(), "holds no sub-folder; expected at least two classes"),
    "one class": (lambda r: make_imagefolder(r, classes=("bags",)), "only the sub-folder 'bags'"),
    "empty class folder": (lambda r: (make_imagefolder(r), (r / "hats" / ".hidden").mkdir(parents=True)),
                           "class folder(s) 'hats' under"),
    "file instead of folder": (lambda r: r.write_text("x"), "is a file, not a folder"),
}


@pytest.mark.parametrize("case", IMAGEFOLDER_ERRORS)
def test_imagefolder_bad_layouts_stop_prepare_and_start_up(tmp_path, case):
    root = tmp_path / "photos"
    act, expected = IMAGEFOLDER_ERRORS[case]
    act(root)
    with pytest.raises(DataError, match=re.escape(expected)):
        prepare_imagefolder("mine", root, tmp_path / "out", SIZE, SPLIT)
    config = own_config(tmp_path, root=str(root))
    with pytest.raises(ConfigError, match=rf"datasets\.mine\.root: .*{re.escape(expected)}"):
        plan(config)


# ------------------------------------------------------------------------------------------ coco
def test_coco_from_a_zip_with_a_category_subset_by_name_and_id(tmp_path):
    ann, images = make_own_coco(tmp_path / "coco", zipped=True)
    before = digest(tmp_path / "coco")
    summary = prepare_coco("shop", ann, images, tmp_path / "out", SIZE, SPLIT, ["bag", 3])
    assert summary == {"images": 10, "quarantined": 0, "splits": {"test": 2, "train": 6, "val": 2}}
    assert json.loads((tmp_path / "out" / "classes.json").read_text()) == {
        "task": "segmentation", "classes": ["background", "bag", "shirt"]}
    classmaps = np.load(tmp_path / "out" / "classmaps.npy")
    assert set(np.unique(classmaps)) == {0, 1, 2}  # the hat (id 9) is not drawn
    # polygons (shirt) and both RLE forms (bag) drawn where the pixels are, on every image
    assert ((classmaps == 2).sum(axis=(1, 2)) > 50).all() and ((classmaps == 1).sum(axis=(1, 2)) > 20).all()
    prepare_coco("shop", ann, images, tmp_path / "all", SIZE, SPLIT)
    assert json.loads((tmp_path / "all" / "classes.json").read_text())["classes"] == ["background", "shirt", "bag",
                                                                                      "hat"]
    assert digest(tmp_path / "coco") == before


def _coco_edit(edit):
    def act(ann: Path, images: Path):
        coco = json.loads(ann.read_text())
        edit(coco, images)
        ann.write_text(json.dumps(coco))
    return act


# Bad COCO content → (edit, categories, the error text or the quarantined source and its reason)
COCO_CASES = {
    "no annotations": (_coco_edit(lambda c, _: c.update(annotations=[])), None, "error", "empty annotation list"),
    "unknown category name": (lambda a, i: None, ["shirt", "scarf"], "error", r"\['scarf'\] not in the annotation"),
    "unknown category id": (lambda a, i: None, [3, 42], "error", r"\[42\] not in the annotation"),
    "image file missing": (lambda a, i: (i / "photos" / "img004.jpg").unlink(), None, "photos/img004.jpg",
                           "not found in"),
    "unreadable image": (lambda a, i: (i / "photos" / "img005.jpg").write_bytes(b"\xff\xd8junk"), None,
                         "photos/img005.jpg", "undecodable image"),
    "annotation of an undeclared category": (
        _coco_edit(lambda c, _: c["annotations"][0].update(category_id=77)), None, "photos/img001.jpg",
        "unknown category_id 77"),
    "image without annotations": (
        _coco_edit(lambda c, _: c.update(annotations=[a for a in c["annotations"] if a["image_id"] != 2])), None,
        "photos/img002.jpg", "no annotations in instances.json"),
    "only other categories": (lambda a, i: None, ["hat"], "photos/img002.jpg", "no annotation of the chosen"),
    "file_name leading outside": (
        _coco_edit(lambda c, _: c["images"][2].update(file_name="../../secret.jpg")), None, "../../secret.jpg",
        "refused"),
}


@pytest.mark.parametrize("case", COCO_CASES)
def test_coco_bad_layouts_give_an_error_or_a_quarantine_row(tmp_path, case):
    ann, images = make_own_coco(tmp_path / "coco")
    act, categories, source, expected = COCO_CASES[case]
    act(ann, images)
    before = digest(tmp_path / "coco")
    if source == "error":
        with pytest.raises(DataError, match=expected):
            prepare_coco("shop", ann, images, tmp_path / "out", SIZE, SPLIT, categories)
        return
    prepare_coco("shop", ann, images, tmp_path / "out", SIZE, SPLIT, categories)
    manifest, quarantine = read_tables(tmp_path / "out")
    reasons = list(quarantine.loc[quarantine["source"] == source, "reason"])
    assert len(reasons) == 1 and expected in reasons[0], quarantine
    assert source not in set(manifest["source"])
    assert digest(tmp_path / "coco") == before


# ---------------------------------------------------------------------------------- configuration
def own_config(tmp_path: Path, **mine) -> dict:
    config = tiny_config()
    config["datasets"]["mine"] = {"kind": "imagefolder", "root": str(tmp_path / "photos"), **mine}
    config["classification"]["dataset"] = "mine"
    config["classification"]["test_on"] = ["original", "rembg"]
    return config


BAD_ENTRIES = {
    "unsafe name": ("../x", {"kind": "imagefolder", "root": "r"}, "datasets.../x: '../x' is not a usable name"),
    "control prefix": ("control-x", {"kind": "imagefolder", "root": "r"}, "known-answer controls"),
    "unknown kind": ("mine", {"kind": "folder", "root": "r"}, "datasets.mine.kind: 'folder' is not one of"),
    "no root": ("mine", {"kind": "imagefolder"}, "datasets.mine.root: required for kind imagefolder"),
    "no annotations": ("mine", {"kind": "coco", "images": "x"}, "datasets.mine.annotations: required"),
    "coco key on imagefolder": ("mine", {"kind": "imagefolder", "root": "r", "categories": ["a"]}, "unknown key"),
    "split lists without test": ("mine", {"kind": "imagefolder", "root": "r", "split_lists": {"train": "t"}},
                                 "split_lists: give train and test"),
    "fractions leave no train": ("mine", {"kind": "imagefolder", "root": "r",
                                          "split": {"val_fraction": 0.5, "test_fraction": 0.5}}, "leave images"),
}


@pytest.mark.parametrize("case", BAD_ENTRIES)
def test_bad_own_entries_are_refused_at_start_up(tmp_path, case):
    name, entry, expected = BAD_ENTRIES[case]
    config = tiny_config()
    config["datasets"][name] = entry
    with pytest.raises(ConfigError, match=re.escape(expected)):
        own_datasets(config)


def test_own_entries_complete_once_and_stay_the_same_when_completed_again(tmp_path):
    config = own_config(tmp_path, split_lists={"train": "train.csv", "test": "lists/test.txt"})
    done = own_datasets(config)
    config["datasets"].update(done)
    assert own_datasets(config) == done
    assert done["mine"]["split"] == {"val_fraction": 0.15, "test_fraction": 0.15, "seed": 0}
    assert done["mine"]["store_size"] == [224, 224] and done["mine"]["reader"] == "imagefolder"


def test_schema_accepts_own_entries_and_still_checks_the_built_in_ones(tmp_path):
    config = own_config(tmp_path)
    config["datasets"]["shop"] = {"kind": "coco", "annotations": "a.json", "images": "imgs.zip",
                                  "categories": ["shirt", 3], "split": {"val_fraction": 0.1, "seed": 2}}
    config["segmentation"]["dataset"] = "shop"
    validate(copy.deepcopy(config), str(SCHEMA))
    for bad in ({"fashionstyle14": dict(config["datasets"]["fashionstyle14"], kind="imagefolder")},
                {"mine": {"kind": "imagefolder", "root": "r", "bogus": 1}},
                {"mine": {"root": "r"}}):
        wrong = copy.deepcopy(config)
        wrong["datasets"].update(bad)
        with pytest.raises(Exception, match="Additional properties|required property"):
            validate(wrong, str(SCHEMA))


def test_tasks_accept_own_datasets_of_their_kind_only(tmp_path):
    make_imagefolder(tmp_path / "photos")
    config = own_config(tmp_path)
    config["datasets"].update(own_datasets(config))
    assert {exp["dataset"] for exp, _ in expand_task(config, "classification")} == {"mine"}
    config["segmentation"]["dataset"] = "mine"
    with pytest.raises(ConfigError, match="segmentation.dataset: 'mine' is not a segmentation dataset.*kind: coco"):
        expand_task(config, "segmentation")


# Dry runs: a wrong path or an empty folder says what was expected, without a traceback.
DRY_RUNS = {"wrong path": (lambda p: None, "does not exist; expected a folder with one sub-folder per class"),
            "empty folder": (lambda p: p.mkdir(), "holds no sub-folder; expected at least two classes")}


@pytest.mark.parametrize("case", DRY_RUNS)
def test_dry_run_with_a_wrong_or_empty_folder_says_what_it_expected(tmp_path, case):
    act, expected = DRY_RUNS[case]
    act(tmp_path / "photos")
    config = own_config(tmp_path)
    config["segmentation"]["enabled"] = False
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "-n", check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert f"datasets.mine.root: {tmp_path / 'photos'} {expected}" in output
    assert "Traceback" not in output


def test_own_config_file_runs_with_one_command_line_override(tmp_path):
    """README's start: config/mine.yaml + `--config 'datasets={mine: {root: ...}}'` (Snakemake merges it)."""
    import subprocess
    import sys

    root = make_imagefolder(tmp_path / "photos")
    cmd = [sys.executable, "-m", "snakemake", "results/data/mine/images.npy", "--snakefile", str(ROOT / "Snakefile"),
           "--directory", str(tmp_path), "--cores", "1", "-n", "--configfile", str(ROOT / "config" / "mine.yaml"),
           "--config", f"datasets={{mine: {{root: {root}}}}}"]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "prepare_imagefolder" in result.stdout


def test_changed_own_photos_re_prepare_the_dataset(tmp_path):
    """A photo replaced deep in a class folder (same name) is seen at start-up: prepare reruns."""
    root = make_imagefolder(tmp_path / "photos")
    config = yaml.safe_load((ROOT / "config" / "mine.yaml").read_text())
    config["datasets"]["mine"].update(root=str(root), store_size=[32, 32])
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    target = "results/data/mine/manifest.tsv"
    snakemake(tmp_path, target)
    stored = (tmp_path / "results/data/mine/images.npy").read_bytes()
    assert "Nothing to be done" in snakemake(tmp_path, "-n", target).stdout
    Image.new("RGB", (48, 64), (1, 2, 3)).save(root / "shoes" / "04.jpg", format="JPEG")
    rerun = snakemake(tmp_path, target)  # its job table: what the change made it run
    assert planned_jobs(rerun.stdout + rerun.stderr) == {"prepare_imagefolder": 1}, rerun.stderr
    assert (tmp_path / "results/data/mine/images.npy").read_bytes() != stored


# ----------------------------------------------------------------------------------- raw photos
def test_photo_readers_find_the_photo_behind_each_store_row(tmp_path):
    root = make_imagefolder(tmp_path / "photos")
    prepare_imagefolder("mine", root, tmp_path / "mine", SIZE, SPLIT)
    with StorePhotos("imagefolder", {"root": str(root)}, tmp_path / "mine" / "manifest.tsv") as photos:
        source = photos.rows.iloc[4].source
        assert np.array_equal(photos.photo(4), np.asarray(Image.open(root / source).convert("RGB")))
    ann, images = make_own_coco(tmp_path / "coco", zipped=True)
    prepare_coco("shop", ann, images, tmp_path / "shop", SIZE, SPLIT)
    with StorePhotos("coco", {"images": str(images), "annotations": str(ann)}, tmp_path / "shop" / "manifest.tsv") \
            as photos:
        assert photos.photo(0).shape == (48, 64, 3) and len(photos) == 10


# ------------------------------------------------------------------------------------ end to end
@pytest.mark.e2e
def test_own_imagefolder_and_coco_run_end_to_end(tiny_standin, tmp_path):
    """Masks (demo stand-in model), both variants, tables: one ImageFolder and one COCO dataset."""
    work = copy_run(tiny_standin, tmp_path / "work")  # the demo's stand-in model, already trained
    root = make_imagefolder(tmp_path / "raw" / "photos")
    ann, images = make_own_coco(tmp_path / "raw" / "coco")
    before = digest(tmp_path / "raw")
    config = tiny_config()
    config["datasets"]["mine"] = {"kind": "imagefolder", "root": str(root), "store_size": [48, 32]}
    config["datasets"]["shop"] = {"kind": "coco", "annotations": str(ann), "images": str(images),
                                  "store_size": [64, 64], "categories": ["shirt", "bag"]}
    config["classification"].update(dataset="mine", seeds=[0])
    config["segmentation"]["dataset"] = "shop"
    (work / "tiny.yaml").write_text(yaml.safe_dump(config))
    snakemake(work)
    results = work / "results"
    for dataset, count in (("mine", 30), ("shop", 10)):
        assert len(np.load(results / "data" / dataset / "images.npy", mmap_mode="r")) == count
        masks = np.load(results / "saliency" / dataset / "demo-sod" / "masks.npy")
        assert masks.shape[0] == count and masks.dtype == np.uint8
        assert (results / "rembg" / dataset / "demo-sod" / "black" / "images.npy").is_file()
    summary = pd.read_csv(results / "tables" / "summary.csv")
    assert set(summary["dataset"]) == {"mine", "shop"}
    for dataset in ("mine", "shop"):
        assert set(summary.loc[summary["dataset"] == dataset, "variant"]) == {"original", "rembg"}
    assert (results / "figures" / "mask_quality" / "shop" / "demo-sod.png").is_file()  # vs the COCO class maps
    assert "mine" in (results / "tables" / "quarantine.md").read_text()
    assert digest(tmp_path / "raw") == before
