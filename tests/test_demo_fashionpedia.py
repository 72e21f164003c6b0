"""The Fashionpedia look-alike: real raw layout (JSON fields, zips, 12-digit names, ids restarting per
file), the three segmentation encodings and crowd regions, the exact 46 categories, and the real
prepare code (as workflow/scripts/prepare_fashionpedia.py calls it) giving class maps that agree with
the generator's own masks."""
import hashlib
import inspect
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image
from pycocotools import mask as mask_utils

from fashion_rembg.datasets.fashionpedia import CATEGORIES, GARMENTS, prepare_fashionpedia
from fashion_rembg.datasets.store import fit_image, read_manifest
from fashion_rembg.demo import demo_settings, fashionpedia_settings, generate_demo, generate_fashionpedia
from fashion_rembg.demo.fashionpedia import EXTRAS, fashionpedia_image

ARGS = dict(seed=3, train=14, val=5, test_unlabelled=3, size=(96, 144), clutter=0.7)
STORE_SIZE = (48, 32)
RAW_FILES = ("instances_attributes_train2020.json", "instances_attributes_val2020.json", "info_test2020.json",
             "train2020.zip", "val_test2020.zip")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("fp") / "fashionpedia"
    counts = generate_fashionpedia(out, **ARGS)
    return out, counts


def _load(out, official):
    return json.loads((out / f"instances_attributes_{official}2020.json").read_text())


def _paths(out):
    return {"train_annotations": out / "instances_attributes_train2020.json",
            "val_annotations": out / "instances_attributes_val2020.json",
            "train_images": out / "train2020.zip", "val_images": out / "val_test2020.zip"}


def test_real_layout_and_fields(demo):
    out, counts = demo
    assert sorted(p.name for p in out.iterdir()) == sorted([*RAW_FILES, "demo_info.json", "truth"])
    train, val = _load(out, "train"), _load(out, "val")
    for doc in (train, val):
        assert list(doc) == ["info", "categories", "attributes", "images", "annotations", "licenses"]
        assert [c["id"] for c in doc["categories"]] == list(range(46))
        assert [c["name"] for c in doc["categories"]] == list(CATEGORIES)
        assert all(set(c) == {"id", "name", "supercategory", "level", "taxonomy_id"} for c in doc["categories"])
        assert all(set(a) == {"id", "name", "supercategory", "level", "taxonomy_id"} for a in doc["attributes"])
        assert [im["id"] for im in doc["images"]] == list(range(len(doc["images"])))  # ids restart at 0
        assert [a["id"] for a in doc["annotations"]] == list(range(len(doc["annotations"])))
        for im in doc["images"]:
            assert set(im) == {"id", "width", "height", "file_name", "license", "time_captured", "original_url",
                               "isstatic", "kaggle_id"}
            assert len(im["file_name"]) == 16 and im["file_name"][:12].isdigit() and im["file_name"].endswith(".jpg")
        attribute_ids = {a["id"] for a in doc["attributes"]}
        for a in doc["annotations"]:
            assert set(a) == {"id", "image_id", "category_id", "attribute_ids", "segmentation", "bbox", "area",
                              "iscrowd"}
            assert set(a["attribute_ids"]) <= attribute_ids
    assert len(train["images"]) == 14 and len(val["images"]) == 5
    assert len({(im["width"], im["height"]) for im in train["images"]}) > 1, "sizes vary as in the real set"
    test_info = json.loads((out / "info_test2020.json").read_text())
    assert "annotations" not in test_info and len(test_info["images"]) == 3
    with zipfile.ZipFile(out / "train2020.zip") as zf:
        assert sorted(n for n in zf.namelist() if n.endswith(".jpg")) == \
            sorted(f"train/{im['file_name']}" for im in train["images"])
    with zipfile.ZipFile(out / "val_test2020.zip") as zf:
        names = {n for n in zf.namelist() if n.endswith(".jpg")}
    val_names = {f"test/{im['file_name']}" for im in val["images"]}
    test_names = {f"test/{im['file_name']}" for im in test_info["images"]}
    assert names == val_names | test_names and not val_names & test_names  # val + unlabelled test in test/
    for im in val["images"]:
        assert (out / "truth" / "test" / im["file_name"].replace(".jpg", ".png")).is_file()
    assert json.loads((out / "demo_info.json").read_text())["counts"] == counts


def test_three_encodings_crowd_regions_and_consistent_area_bbox(demo):
    out, counts = demo
    train, val = _load(out, "train"), _load(out, "val")
    kinds = {"polygon": 0, "compressed": 0, "uncompressed": 0}
    for doc in (train, val):
        sizes = {im["id"]: (im["height"], im["width"]) for im in doc["images"]}
        for a in doc["annotations"]:
            h, w = sizes[a["image_id"]]
            seg = a["segmentation"]
            if isinstance(seg, list):
                kinds["polygon"] += 1
                assert all(len(p) >= 6 and len(p) % 2 == 0 for p in seg)
                rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
                assert a["iscrowd"] == 0
            else:
                assert seg["size"] == [h, w]
                if isinstance(seg["counts"], list):
                    kinds["uncompressed"] += 1
                    assert sum(seg["counts"]) == h * w
                    rle = mask_utils.frPyObjects(seg, h, w)
                else:
                    kinds["compressed"] += 1
                    rle = {"size": seg["size"], "counts": seg["counts"].encode()}
            assert a["area"] == int(mask_utils.area(rle)) > 0
            assert np.allclose(a["bbox"], mask_utils.toBbox(rle), atol=0.01)
    assert all(kinds.values()), kinds
    assert kinds["polygon"] > kinds["compressed"] > 0 and kinds["polygon"] > kinds["uncompressed"]
    assert kinds == {"polygon": counts["encodings"]["polygon"], "compressed": counts["encodings"]["compressed_rle"],
                     "uncompressed": counts["encodings"]["uncompressed_rle"]}
    crowd_by_image = {}
    for a in train["annotations"]:
        crowd_by_image.setdefault(a["image_id"], []).append(a["iscrowd"])
    assert all(crowd_by_image[0]), "the first train image is crowd-only"
    n_crowd = sum(a["iscrowd"] for doc in (train, val) for a in doc["annotations"])
    assert n_crowd == counts["crowd"] > len(crowd_by_image[0]), "crowd regions beside the crowd-only image"
    cats = {a["category_id"] for doc in (train, val) for a in doc["annotations"]}
    assert {CATEGORIES.index("sleeve"), CATEGORIES.index("neckline")} <= cats, "parts for classes: all"
    assert cats - set(range(GARMENTS)) and cats & set(range(GARMENTS))


def _expected_classmap(pic, classes):
    """The generator's own masks painted the way the reader paints annotations (larger first)."""
    h, w = pic.foreground.shape
    classmap = np.zeros((h, w), np.uint8)
    drawn = GARMENTS if classes == "garments" else len(CATEGORIES)
    for cat, mask, _ in sorted(pic.instances, key=lambda x: -int(x[1].sum())):
        if cat < drawn:
            classmap[mask] = cat + 1
    return classmap


@pytest.mark.parametrize("classes", ["garments", "all"])
def test_real_prepare_code_agrees_with_the_generated_masks(demo, tmp_path, classes):
    out, _ = demo
    store = tmp_path / classes
    # as workflow/scripts/prepare_fashionpedia.py calls it
    prepare_fashionpedia({k: str(v) for k, v in _paths(out).items()}, store, STORE_SIZE, classes, 0.2, 0,
                         workers=1, fit="cover")
    quarantine = pd.read_csv(store / "quarantine.tsv", sep="\t")
    assert len(quarantine) == 0, quarantine.to_dict("records")
    manifest = read_manifest(store / "manifest.tsv")
    assert len(manifest) == 14 + 5 and (manifest["split"] == "test").sum() == 5
    assert set(manifest["split"]) == {"train", "val", "test"}
    maps = np.load(store / "classmaps.npy")
    names = {"train": {im["id"]: im["file_name"] for im in _load(out, "train")["images"]},
             "val": {im["id"]: im["file_name"] for im in _load(out, "val")["images"]}}
    agree = []
    for row in manifest.itertuples():
        official, image_id = row.id.split("-")
        pic = fashionpedia_image(ARGS["seed"], official, int(image_id), ARGS["size"], ARGS["clutter"])
        assert row.source.endswith(names[official][int(image_id)])
        expected = np.asarray(fit_image(Image.fromarray(_expected_classmap(pic, classes)), STORE_SIZE,
                                        Image.Resampling.NEAREST, "cover"))
        agree.append((maps[row.index] == expected).mean())
    assert min(agree) >= 0.95, agree
    present = set(np.unique(maps)) - {0}
    if classes == "all":
        assert CATEGORIES.index("sleeve") + 1 in present
    else:
        assert max(present) <= GARMENTS


def test_deterministic_and_other_streams_untouched(demo, tmp_path):
    out, _ = demo
    again = tmp_path / "again"
    generate_fashionpedia(again, **ARGS)

    def digest(root):
        return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(root.rglob("*")) if p.is_file()}

    assert digest(again) == digest(out)
    other = tmp_path / "other"
    generate_fashionpedia(other, **(ARGS | {"seed": 4}))
    assert digest(other)["train2020.zip"] != digest(out)["train2020.zip"]


def test_refuses_to_overwrite_what_is_not_a_demo(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "train2020.zip").write_bytes(b"not ours")
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        generate_fashionpedia(real, **ARGS)
    assert (real / "train2020.zip").read_bytes() == b"not ours"
    with pytest.raises(ValueError, match="crowd_only_images"):
        generate_fashionpedia(tmp_path / "x", **(ARGS | {"crowd_only_images": 14}))


def test_config_block_splits_between_the_generators(tmp_path):
    demo = {"enabled": True, "out_dir": "resources/demo", "seed": 2, "clutter": 0.4, "fs14_per_class": 3,
            "modanet_train": 2, "modanet_val": 1, "sod_train": 0,
            "fashionpedia": {"train": 3, "val": 1, "test_unlabelled": 0, "size": [64, 96], "clutter": 0.0}}
    assert fashionpedia_settings(demo) == {"seed": 2, "clutter": 0.0, "train": 3, "val": 1, "test_unlabelled": 0,
                                           "size": [64, 96]}
    assert "fashionpedia" not in demo_settings(demo) and demo_settings(demo)["seed"] == 2
    generate_demo(tmp_path / "demo", **demo_settings(demo))  # both accept their share of the block
    counts = generate_fashionpedia(tmp_path / "demo" / "fashionpedia", **fashionpedia_settings(demo))
    assert counts["train_images"] == 3 and (tmp_path / "demo" / "FashionStyle14_v1" / "train.csv").is_file()


def _garments(pic):
    return [CATEGORIES[cat].split(",")[0] for cat, _, _ in pic.instances if cat < GARMENTS]


def test_extras_keep_only_the_listed_optional_garments_and_close_ups_enlarge_them():
    main = {"shirt", "top", "pants", "shorts", "skirt", "dress"}
    images = [(official, i) for official in ("train", "val") for i in range(12)]
    everything = [fashionpedia_image(5, o, i, (96, 144), 0.7) for o, i in images]
    assert {g for pic in everything for g in _garments(pic)} - main >= {"shoe", "bag"}  # null: all extras
    only_main = [fashionpedia_image(5, o, i, (96, 144), 0.7, extras=()) for o, i in images]
    assert all(set(_garments(pic)) <= main and _garments(pic) for pic in only_main)
    with_shoes = [fashionpedia_image(5, o, i, (96, 144), 0.7, extras=("shoe",)) for o, i in images]
    assert {g for pic in with_shoes for g in _garments(pic)} - main == {"shoe"}
    for full, reduced in zip(everything, only_main):  # the same figure and backdrop, minus its extras
        assert full.img.size == reduced.img.size
        assert [g for g in _garments(full) if g in main] == _garments(reduced)
    close = [fashionpedia_image(5, o, i, (96, 144), 0.7, extras=(), close_up=1.0) for o, i in images]

    def mean_area(pics):
        return np.mean([mask.sum() for pic in pics for cat, mask, _ in pic.instances if cat < GARMENTS])

    assert mean_area(close) > 1.3 * mean_area(only_main)


def test_extras_and_close_up_reach_the_files_and_are_checked(tmp_path):
    args = ARGS | {"train": 6, "val": 2, "test_unlabelled": 0, "extras": ["bag", "shoe"], "close_up": 0.5}
    generate_fashionpedia(tmp_path / "fp", **args)
    info = json.loads((tmp_path / "fp" / "demo_info.json").read_text())
    assert info["args"]["extras"] == ["shoe", "bag"] and info["args"]["close_up"] == 0.5
    doc = _load(tmp_path / "fp", "train")
    assert [c["id"] for c in doc["categories"]] == list(range(46))  # the real categories, drawn or not
    drawn = {CATEGORIES[a["category_id"]].split(",")[0] for a in doc["annotations"] if a["category_id"] < GARMENTS}
    assert drawn <= {"shirt", "top", "pants", "shorts", "skirt", "dress", "shoe", "bag"}
    with pytest.raises(ValueError, match="extras"):
        generate_fashionpedia(tmp_path / "x", **(args | {"extras": ["cape"]}))
    with pytest.raises(ValueError, match="extras"):
        generate_fashionpedia(tmp_path / "x", **(args | {"extras": "shoe"}))
    with pytest.raises(ValueError, match="close_up"):
        generate_fashionpedia(tmp_path / "x", **(args | {"close_up": 1.5}))


def test_schema_defaults_and_extras_are_the_generators():
    schema = yaml.safe_load((Path(__file__).resolve().parents[1] / "workflow/schemas/config.schema.yaml").read_text())
    block = schema["properties"]["demo"]["properties"]["fashionpedia"]["properties"]
    defaults = {k: p.default for k, p in inspect.signature(generate_fashionpedia).parameters.items()
                if p.default is not inspect.Parameter.empty}
    for key, spec in block.items():
        if "default" in spec:
            expected = list(defaults[key]) if isinstance(defaults[key], tuple) else defaults[key]
            assert spec["default"] == expected, key
    assert block["extras"]["anyOf"][1]["items"]["enum"] == list(EXTRAS)
