"""Prepare FashionStyle14 / ModaNet from small fixtures in their real raw formats, bad cases included."""
import io
import json
import unicodedata

import lmdb
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fashion_rembg.datasets.fashionstyle14 import STYLES, prepare_fashionstyle14
from fashion_rembg.datasets.modanet import CATEGORIES, prepare_modanet, rasterise, split_ids
from fashion_rembg.datasets.store import fit_image, read_manifest
from fashion_rembg.datasets.truth import prepare_truth
from fashion_rembg.errors import DataError

SIZE = (24, 16)


def jpeg(path, color, size=(40, 60), mode="RGB", **save):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path, **save)


@pytest.fixture
def fs14(tmp_path):
    root = tmp_path / "FashionStyle14_v1"
    lines = {"train": [], "val": [], "test": []}
    for k, style in enumerate(STYLES):
        for i, split in enumerate(["train", "train", "val", "test"]):
            name = f"{k:02d}{i:030x}.jpg"
            jpeg(root / "dataset" / style / name, (k * 18, 100, 200 - k * 10))
            lines[split].append(f"dataset/{style}/{name}")
    d = root / "dataset"
    (d / "gal" / "zero.jpg").write_bytes(b"")
    (d / "gal" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    jpeg(d / "rock" / "cmyk.jpg", (0, 50, 100, 0), mode="CMYK")
    jpeg(d / "rock" / "rgba.png", (255, 0, 0, 0), mode="RGBA")
    jpeg(d / "rock" / "palette.png", 3, mode="P")
    Image.fromarray(np.full((60, 40), 65535, dtype=np.uint16)).save(d / "mode" / "deep.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90°: stored landscape, displayed portrait
    Image.new("RGB", (60, 40), (10, 20, 30)).save(d / "mode" / "rotated.jpg", exif=exif.tobytes())
    nfd = unicodedata.normalize("NFD", "café.jpg")
    jpeg(d / "fairy" / nfd, (1, 2, 3))
    lines["train"] += ["dataset/gal/zero.jpg", "dataset/gal/broken.jpg", "dataset/rock/cmyk.jpg",
                       "dataset/rock/rgba.png", "dataset/rock/palette.png", "dataset/mode/deep.png",
                       "dataset/mode/rotated.jpg", unicodedata.normalize("NFC", "dataset/fairy/café.jpg"),
                       "dataset/street/missing.jpg", "dataset/unknown/x.jpg", "not a path"]
    for split, rows in lines.items():
        (root / f"{split}.csv").write_text("\n".join(rows) + "\n")
    return root


def test_fashionstyle14_manifest_splits_and_quarantine(fs14, tmp_path):
    before = {p: p.stat().st_mtime_ns for p in fs14.rglob("*")}
    out = tmp_path / "out"
    summary = prepare_fashionstyle14(fs14, out, SIZE)
    manifest = read_manifest(out / "manifest.tsv")
    quarantine = pd.read_csv(out / "quarantine.tsv", sep="\t")
    images = np.load(out / "images.npy")
    assert images.shape == (len(manifest), *SIZE, 3) and images.dtype == np.uint8
    assert list(manifest["index"]) == list(range(len(manifest)))
    # 14 × 4 regular + cmyk, rgba, palette, 16-bit, rotated, NFD name
    assert summary["images"] == 14 * 4 + 6
    assert manifest["split"].value_counts().to_dict() == {"train": 14 * 2 + 6, "val": 14, "test": 14}
    reasons = dict(zip(quarantine["source"], quarantine["reason"]))
    assert "zero-byte" in reasons["dataset/gal/zero.jpg"]
    assert "undecodable" in reasons["dataset/gal/broken.jpg"]
    assert "no such file" in reasons["dataset/street/missing.jpg"]
    assert "unknown style" in reasons["dataset/unknown/x.jpg"]
    assert "not of the form" in reasons["not a path"]
    notes = dict(zip(manifest["source"], manifest["note"]))
    assert "CMYK" in notes["dataset/rock/cmyk.jpg"]
    assert "alpha" in notes["dataset/rock/rgba.png"]
    assert "16-bit" in notes["dataset/mode/deep.png"]
    assert "exif" in notes["dataset/mode/rotated.jpg"]
    assert "dataset/fairy/café.jpg" in notes
    # labels follow folders, pixels follow rows
    row = manifest[manifest["source"].str.startswith("dataset/lolita/")].iloc[0]
    assert row["label"] == "lolita" and row["label_idx"] == STYLES.index("lolita")
    k = STYLES.index("lolita")
    assert np.abs(images[row["index"]].astype(int) - [k * 18, 100, 200 - k * 10]).max() <= 3
    rgba_row = manifest.set_index("source").loc["dataset/rock/rgba.png", "index"]
    assert images[rgba_row].min() >= 250  # transparent → flattened on white
    assert json.loads((out / "classes.json").read_text())["classes"] == list(STYLES)
    assert before == {p: p.stat().st_mtime_ns for p in fs14.rglob("*")}, "raw data modified"


def test_fashionstyle14_accepts_valid_csv(fs14, tmp_path):
    (fs14 / "val.csv").rename(fs14 / "valid.csv")
    summary = prepare_fashionstyle14(fs14, tmp_path / "out", SIZE)
    assert summary["splits"]["val"] == 14


def test_fashionstyle14_wrong_folders_is_clear(fs14, tmp_path):
    (fs14 / "dataset" / "kireime-casual").rename(fs14 / "dataset" / "casual")
    with pytest.raises(DataError, match="kireime-casual"):
        prepare_fashionstyle14(fs14, tmp_path / "out", SIZE)
    (fs14 / "dataset" / "casual").rename(fs14 / "dataset" / "kireime-casual")
    (fs14 / "train.csv").unlink()
    with pytest.raises(DataError, match="train.csv"):
        prepare_fashionstyle14(fs14, tmp_path / "out", SIZE)


def coco(images, annotations):
    return {"info": {}, "images": images, "year": 2018, "licenses": [], "type": "instances",
            "annotations": annotations,
            "categories": [{"id": i, "name": n, "supercategory": "fashion"} for i, n in enumerate(CATEGORIES, 1)]}


@pytest.fixture
def modanet(tmp_path):
    images, annotations, photos = [], [], {}
    for n, image_id in enumerate([31, 1007, 2048, 40960, 55555, 70001, 90000, 100014, 120000, 132670]):
        images.append({"file_name": f"{image_id:07d}.jpg", "width": 400, "height": 600, "id": image_id, "license": 3})
        buf = io.BytesIO()
        Image.new("RGB", (400, 600), (n * 20, 80, 160)).save(buf, format="JPEG")
        photos[image_id] = buf.getvalue()
        if image_id == 2048:
            continue  # an image without annotations
        annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": 6, "iscrowd": 0,
                            "area": 40000, "bbox": [100, 100, 200, 200],
                            "segmentation": [[100, 100, 300, 100, 300, 300, 100, 300]]})
        annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": 4, "iscrowd": 0,
                            "area": 800, "bbox": [100, 500, 60, 40],
                            "segmentation": [[100, 500, 130, 500, 130, 540, 100, 540],
                                             [230, 500, 260, 500, 260, 540, 230, 540]]})
    ann_path = tmp_path / "modanet2018_instances_train.json"
    ann_path.write_text(json.dumps(coco(images, annotations)))
    lmdb_dir = tmp_path / "photos.lmdb"
    env = lmdb.open(str(lmdb_dir), map_size=2**26)
    with env.begin(write=True) as txn:
        for image_id, payload in photos.items():
            if image_id != 90000:  # a missing key
                txn.put(str(image_id).encode(), payload)
    env.close()
    return ann_path, lmdb_dir


def test_modanet_store_classmaps_split_and_quarantine(modanet, tmp_path):
    ann_path, lmdb_dir = modanet
    out = tmp_path / "out"
    summary = prepare_modanet(ann_path, lmdb_dir, out, (48, 32), 0.2, 0.2, seed=0)
    manifest = read_manifest(out / "manifest.tsv")
    assert summary["images"] == 8 and len(manifest) == 8
    # 9 labelled ids split 5/2/2 before the id missing from the LMDB is dropped
    counts = manifest["split"].value_counts().to_dict()
    assert sum(counts.values()) == 8 and counts["train"] >= 4 and {"val", "test"} <= set(counts)
    quarantine = pd.read_csv(out / "quarantine.tsv", sep="\t")
    reasons = dict(zip(quarantine["source"], quarantine["reason"]))
    assert "no annotations" in reasons["0002048.jpg"] and "missing" in reasons["0090000.jpg"]
    maps = np.load(out / "classmaps.npy")
    assert maps.shape == (8, 48, 32)
    assert set(np.unique(maps)) == {0, 4, 6}
    assert json.loads((out / "classes.json").read_text())["classes"] == ["background", *CATEGORIES]
    again = tmp_path / "again"
    prepare_modanet(ann_path, lmdb_dir, again, (48, 32), 0.2, 0.2, seed=0)
    assert (again / "manifest.tsv").read_bytes() == (out / "manifest.tsv").read_bytes()
    assert (again / "classmaps.npy").read_bytes() == (out / "classmaps.npy").read_bytes()


def test_rasterise_overlap_polygons_and_rle():
    from pycocotools import mask as mask_utils

    big = {"id": 1, "category_id": 6, "area": 100, "segmentation": [[0, 0, 10, 0, 10, 10, 0, 10]]}
    small = {"id": 2, "category_id": 2, "area": 4, "segmentation": [[2, 2, 4, 2, 4, 4, 2, 4]]}
    rle_mask = np.zeros((12, 12), dtype=np.uint8, order="F")
    rle_mask[11, :] = 1
    rle = mask_utils.encode(rle_mask)
    rle["counts"] = rle["counts"].decode()
    as_rle = {"id": 3, "category_id": 13, "area": 12, "segmentation": rle}
    empty = {"id": 4, "category_id": 1, "area": 0, "segmentation": []}
    classmap = rasterise([small, big, as_rle, empty], 12, 12)
    assert classmap[3, 3] == 2 and classmap[7, 7] == 6 and classmap[11, 5] == 13 and classmap[0, 11] == 0


def test_split_is_deterministic_and_disjoint():
    ids = list(range(100, 200))
    a, b = split_ids(ids, 0.1, 0.2, 7), split_ids(list(reversed(ids)), 0.1, 0.2, 7)
    assert a == b
    assert sorted(a.values()).count("val") == 10 and sorted(a.values()).count("test") == 20
    assert a != split_ids(ids, 0.1, 0.2, 8)


def test_lfs_pointer_is_rejected(tmp_path, modanet):
    pointer = tmp_path / "pointer.json"
    pointer.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:b8a3fd0d\nsize 105924292\n")
    with pytest.raises(DataError, match="Git LFS pointer"):
        prepare_modanet(pointer, modanet[1], tmp_path / "out", (48, 32), 0.2, 0.2, 0)


def test_missing_lmdb_says_where(modanet, tmp_path):
    with pytest.raises(DataError, match="photos.lmdb.tar"):
        prepare_modanet(modanet[0], tmp_path / "nowhere", tmp_path / "out", (48, 32), 0.2, 0.2, 0)


def test_truth_masks_follow_the_manifest(fs14, tmp_path):
    out = tmp_path / "out"
    prepare_fashionstyle14(fs14, out, SIZE)
    manifest = read_manifest(out / "manifest.tsv")
    truth_dir = tmp_path / "truth"
    for i, source in enumerate(manifest["source"]):
        path = (truth_dir / source).with_suffix(".png")
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("L", (40, 60), 255 if i % 2 else 0).save(path)
    assert prepare_truth(out / "manifest.tsv", truth_dir, out / "truth.npy", SIZE) == len(manifest)
    truth = np.load(out / "truth.npy")
    assert truth.shape == (len(manifest), *SIZE)
    assert (truth[1] == 255).all() and (truth[0] == 0).all()
    path.unlink()
    with pytest.raises(DataError, match="missing"):
        prepare_truth(out / "manifest.tsv", truth_dir, out / "truth.npy", SIZE)


def test_fit_image_keeps_aspect_by_cropping():
    img = Image.new("RGB", (100, 100), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 50, 100))
    fitted = np.asarray(fit_image(img, (20, 10)))
    assert fitted.shape == (20, 10, 3)
