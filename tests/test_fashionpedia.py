"""Fashionpedia: official JSONs + zips (val images in test/), polygons mixed with compressed and
uncompressed RLE, garment parts, ids restarting per split, the 27-garment class set."""
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fashion_rembg.datasets.coco import split_ids
from fashion_rembg.datasets.fashionpedia import CATEGORIES, prepare_fashionpedia
from fashion_rembg.datasets.store import read_manifest
from fashion_rembg.errors import DataError

from raw_fixtures import make_fashionpedia

SIZE = (48, 32)  # the fixture's 300×450 images fit exactly (2:3)


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    return make_fashionpedia(tmp_path_factory.mktemp("fashionpedia"))


def prepare(paths, out, classes="garments", workers=1):
    return prepare_fashionpedia(paths, out, SIZE, classes, val_fraction=0.25, seed=0, workers=workers)


def test_store_splits_classes_and_quarantine(raw, tmp_path):
    summary = prepare(raw, tmp_path / "out")
    out = tmp_path / "out"
    manifest = read_manifest(out / "manifest.tsv")
    official_train = split_ids([1, 2, 3, 4], 0.25, 0.0, 0)
    expected = {"test": 3}
    for image_id in (1, 2, 3):  # image 4 is not in train2020.zip
        expected[official_train[image_id]] = expected.get(official_train[image_id], 0) + 1
    assert summary["splits"] == dict(sorted(expected.items()))
    assert set(manifest["id"]) == {"train-1", "train-2", "train-3", "val-1", "val-2", "val-3"}  # ids restart
    assert set(manifest.loc[manifest["split"] == "test", "source"]) == {f"test/{100 + i:012d}.jpg" for i in (1, 2, 3)}
    assert "000000009999" not in " ".join(manifest["source"]), "test-only images are not used"
    quarantine = pd.read_csv(out / "quarantine.tsv", sep="\t")
    assert list(quarantine["source"]) == ["train/000000000004.jpg"]
    assert "not found" in quarantine["reason"][0] and "train2020.zip" in quarantine["reason"][0]
    classes = json.loads((out / "classes.json").read_text())
    assert classes == {"task": "segmentation", "classes": ["background", *CATEGORIES[:27]]}
    maps = np.load(out / "classmaps.npy")
    images = np.load(out / "images.npy")
    assert maps.shape == (6, *SIZE) and images.shape == (6, *SIZE, 3)
    row = manifest.set_index("id").loc["val-1", "index"]  # 300×450: shirt top half, sleeve, shoe bottom
    assert maps[row, 2, 2] == 1, "sleeve (a part) is not drawn: the shirt shows through"
    assert maps[row, 10, 16] == 1 and maps[row, 30, 16] == 0
    assert maps[row, 45, 12] == CATEGORIES.index("shoe") + 1  # uncompressed RLE
    assert set(np.unique(maps)) == {0, 1, 24}


def test_all_46_classes_draw_the_parts(raw, tmp_path):
    prepare(raw, tmp_path / "all", classes="all")
    classes = json.loads((tmp_path / "all" / "classes.json").read_text())["classes"]
    assert len(classes) == 47 and classes[32] == "sleeve"
    maps = np.load(tmp_path / "all" / "classmaps.npy")
    assert set(np.unique(maps)) == {0, 1, 24, 32}


def test_extracted_folders_and_parallel_workers_give_identical_stores(raw, tmp_path):
    prepare(raw, tmp_path / "zip")
    prepare(raw, tmp_path / "parallel", workers=2)
    folders = make_fashionpedia(tmp_path / "folders", as_folders=True)
    prepare(folders, tmp_path / "folder")
    for other in ("parallel", "folder"):
        for name in ("images.npy", "classmaps.npy"):
            assert (tmp_path / other / name).read_bytes() == (tmp_path / "zip" / name).read_bytes(), (other, name)
    assert (tmp_path / "parallel" / "manifest.tsv").read_bytes() == (tmp_path / "zip" / "manifest.tsv").read_bytes()


def test_instance_store_decodes_each_photo_once(raw, tmp_path, monkeypatch):
    """The semantic and the instance rows of a photo come from one decode (Fashionpedia: ~46k photos)."""
    opened = []
    real_open = Image.open

    def counting_open(fp, *args, **kwargs):
        opened.append(fp)
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", counting_open)
    summary = prepare_fashionpedia(raw, tmp_path / "out", SIZE, val_fraction=0.25, seed=0, instances=True)
    assert summary["images"] == summary["instances"]["images"] == 6
    assert len(opened) == 6, f"{len(opened)} decodes for 6 photos"


def edit(paths, tmp_path, key, change):
    doc = json.loads(open(paths[key]).read())
    change(doc)
    path = tmp_path / f"{key}.json"
    path.write_text(json.dumps(doc))
    return dict(paths, **{key: str(path)})


def test_bad_annotations_are_quarantined_or_refused(raw, tmp_path):
    def parts_only_and_bad_rle(doc):
        for ann in doc["annotations"]:
            if ann["image_id"] == 1 and ann["category_id"] in (0, 23):
                ann["category_id"] = 28  # collar: only parts left
            if ann["image_id"] == 2 and isinstance(ann["segmentation"], dict):
                ann["segmentation"]["size"] = [10, 10]  # RLE of another size

    paths = edit(raw, tmp_path, "val_annotations", parts_only_and_bad_rle)
    prepare(paths, tmp_path / "out")
    quarantine = pd.read_csv(tmp_path / "out" / "quarantine.tsv", sep="\t").set_index("source")["reason"]
    assert "only garment parts" in quarantine["test/000000000101.jpg"]
    assert "RLE size [10, 10]" in quarantine["test/000000000102.jpg"]

    sample = edit(raw, tmp_path, "train_annotations", lambda d: d["categories"].extend(
        [{"id": 46, "name": "earmuffs"}, {"id": 47, "name": "garment belt"}]))
    with pytest.raises(DataError, match="pre-release sample"):
        prepare(sample, tmp_path / "sample")
    unlabelled = edit(raw, tmp_path, "val_annotations", lambda d: d.update(annotations=[]))
    with pytest.raises(DataError, match="empty annotation list.*info_test2020"):
        prepare(unlabelled, tmp_path / "unlabelled")
