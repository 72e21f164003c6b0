"""Prepare FashionStyle14 / ModaNet from small fixtures in their real raw formats, bad cases included."""
import json

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

from raw_fixtures import coco_json, jpeg_bytes, make_fs14, make_modanet, pack

SIZE = (24, 16)


@pytest.fixture
def fs14(tmp_path):
    return make_fs14(tmp_path / "FashionStyle14_v1")


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


@pytest.fixture
def modanet(tmp_path):
    return make_modanet(tmp_path)


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


def test_parallel_workers_write_the_same_store_as_serial(fs14, modanet, tmp_path):
    prepare_fashionstyle14(fs14, tmp_path / "fs_serial", SIZE, workers=1)
    prepare_fashionstyle14(fs14, tmp_path / "fs_parallel", SIZE, workers=2)
    prepare_modanet(*modanet, tmp_path / "m_serial", (48, 32), 0.2, 0.2, 0, workers=1)
    prepare_modanet(*modanet, tmp_path / "m_parallel", (48, 32), 0.2, 0.2, 0, workers=2)
    for serial, parallel, names in [("fs_serial", "fs_parallel", ["images.npy"]),
                                    ("m_serial", "m_parallel", ["images.npy", "classmaps.npy"])]:
        for name in names + ["manifest.tsv", "quarantine.tsv"]:
            assert (tmp_path / parallel / name).read_bytes() == (tmp_path / serial / name).read_bytes(), name
    loaded = np.load(tmp_path / "fs_parallel" / "images.npy", mmap_mode="r")
    assert loaded.shape[1:] == (*SIZE, 3) and not list(tmp_path.glob("*/.*.partial.npy"))


def test_fashionstyle14_from_an_extracted_archive_and_shift_jis_lists(fs14, tmp_path):
    from fashion_rembg.datasets.archives import safe_extract

    (fs14 / "test.csv").write_bytes((fs14 / "test.csv").read_text().encode("cp932"))
    safe_extract(pack(fs14, tmp_path / "fs14.zip", "zip"), tmp_path / "extracted", 10**8)
    summary = prepare_fashionstyle14(tmp_path / "extracted", tmp_path / "out", SIZE)  # root found below
    assert summary["splits"] == {"test": 14, "train": 14 * 2 + 6, "val": 14}
    (fs14 / "val.csv").write_bytes(b"\xff\xfe\x00garbage \x81")
    with pytest.raises(DataError, match="val.csv is neither UTF-8 nor Shift-JIS"):
        prepare_fashionstyle14(fs14, tmp_path / "bad", SIZE)


def write_modanet(tmp_path, images, annotations, photos):
    from fashion_rembg.datasets.modanet import CATEGORIES as NAMES

    ann_path = tmp_path / "train.json"
    categories = [{"id": i, "name": n, "supercategory": "fashion"} for i, n in enumerate(NAMES, 1)]
    ann_path.write_text(json.dumps(coco_json(images, annotations, categories)))
    env = lmdb.open(str(tmp_path / "photos.lmdb"), map_size=2**26)
    with env.begin(write=True) as txn:
        for image_id, payload in photos.items():
            txn.put(str(image_id).encode(), payload)
    env.close()
    return ann_path, tmp_path / "photos.lmdb"


def test_modanet_exif_rotation_and_bad_annotations(tmp_path):
    """Stored 600×400 with EXIF orientation 6 (shown 400×600): the JSON size says which frame the
    polygons use, and the class map follows the photo. Bad entries become quarantine rows."""
    def image(image_id, w=400, h=600):
        return {"id": image_id, "file_name": f"{image_id:07d}.jpg", "width": w, "height": h}

    def ann(ann_id, image_id, cat, segmentation, area=100):
        return {"id": ann_id, "image_id": image_id, "category_id": cat, "area": area, "segmentation": segmentation}

    left_strip = [[0, 0, 100, 0, 100, 600, 0, 600]]  # shown frame (400 wide): left quarter
    top_strip = [[0, 0, 600, 0, 600, 100, 0, 100]]  # stored frame (600 wide): top strip
    images = [image(1), image(2, w=600, h=400), image(3), image(4), image(5), image(6), image(7, w=500)]
    annotations = [ann(1, 1, 5, left_strip), ann(2, 2, 5, top_strip),
                   ann(3, 3, 9, []), ann(4, 4, 9, []), ann(5, 4, 9, left_strip),  # no polygons
                   ann(6, 5, 0, left_strip), ann(7, 6, 9, left_strip), ann(8, 7, 9, left_strip)]
    rotated = jpeg_bytes((90, 90, 90), size=(600, 400), exif_orientation=6)
    photos = {1: rotated, 2: rotated, 3: jpeg_bytes((1, 1, 1)), 4: jpeg_bytes((1, 1, 1)), 5: jpeg_bytes((1, 1, 1)),
              6: b"\xff\xd8\xff\xe0 truncated", 7: jpeg_bytes((1, 1, 1))}
    out = tmp_path / "out"
    prepare_modanet(*write_modanet(tmp_path, images, annotations, photos), out, (60, 40), 0.01, 0.01, 0)
    manifest = read_manifest(out / "manifest.tsv").set_index("id")
    maps = np.load(out / "classmaps.npy")
    shown, stored = maps[manifest.loc["1", "index"]], maps[manifest.loc["2", "index"]]
    # polygons in the shown frame: left quarter; in the stored frame (top strip) rotated 90° clockwise
    # by orientation 6 it becomes the right-hand quarter of the shown photo
    assert (shown[:, :8] == 5).all() and (shown[:, 12:] == 0).all()
    assert (stored[:, -8:] == 5).all() and (stored[:, :-12] == 0).all()
    assert "exif-rotated" in manifest.loc["1", "note"]
    assert "1 annotation(s) without polygons" in manifest.loc["4", "note"]
    reasons = pd.read_csv(out / "quarantine.tsv", sep="\t").set_index("source")["reason"]
    assert "no drawable annotation" in reasons["0000003.jpg"]
    assert "unknown category_id 0" in reasons["0000005.jpg"]
    assert "undecodable" in reasons["0000006.jpg"]
    assert "the annotations say 500×600" in reasons["0000007.jpg"]


def test_modanet_empty_annotation_list_is_explained(tmp_path, modanet):
    doc = json.loads(modanet[0].read_text())
    doc["annotations"] = []  # what modanet2018_instances_val.json holds
    val = tmp_path / "modanet2018_instances_val.json"
    val.write_text(json.dumps(doc))
    with pytest.raises(DataError, match="empty annotation list.*withheld"):
        prepare_modanet(val, modanet[1], tmp_path / "out", (48, 32), 0.2, 0.2, 0)
    (tmp_path / "page.json").write_text("<!DOCTYPE html><html>moved</html>")
    with pytest.raises(DataError, match="HTML page"):
        prepare_modanet(tmp_path / "page.json", modanet[1], tmp_path / "out", (48, 32), 0.2, 0.2, 0)


def test_store_writer_streams_in_order_and_cleans_up(tmp_path):
    from fashion_rembg.datasets.store import StoreWriter

    writer = StoreWriter(tmp_path, 5, {"a": (2, 3)})
    writer.put(1, a=np.ones((2, 3), np.uint8))
    with pytest.raises(ValueError, match="out of order"):
        writer.put(0, a=np.ones((2, 3), np.uint8))
    with pytest.raises(ValueError, match="expected"):
        writer.put(2, a=np.ones((3, 3), np.uint8))
    writer.put(4, a=np.full((2, 3), 7, np.uint8))
    assert writer.finish() == 2
    stored = np.load(tmp_path / "a.npy", mmap_mode="r")
    assert stored.shape == (2, 2, 3) and stored[1, 0, 0] == 7
    aborted = StoreWriter(tmp_path / "b", 3, {"a": (1,)})
    aborted.abort()
    assert not list((tmp_path / "b").iterdir())


def test_modanet_images_leave_the_lmdb_unchanged_and_prepare_the_same(modanet, tmp_path):
    from fashion_rembg.datasets.modanet import extract_images

    ann_path, lmdb_dir = modanet
    summary = extract_images(ann_path, lmdb_dir, tmp_path / "images")
    assert summary["images"] == 8 and summary["missing_ids"] == [90000]  # 2048 has no annotations
    env = lmdb.open(str(lmdb_dir), readonly=True, lock=False)
    with env.begin() as txn:
        assert (tmp_path / "images" / "0000031.jpg").read_bytes() == txn.get(b"31"), "bytes written unchanged"
    env.close()
    assert not (tmp_path / "images" / "0002048.jpg").exists()
    prepare_modanet(ann_path, lmdb_dir, tmp_path / "from_lmdb", (48, 32), 0.2, 0.2, 0)
    prepare_modanet(ann_path, tmp_path / "images", tmp_path / "from_files", (48, 32), 0.2, 0.2, 0, workers=2)
    for name in ("images.npy", "classmaps.npy", "manifest.tsv"):
        assert (tmp_path / "from_files" / name).read_bytes() == (tmp_path / "from_lmdb" / name).read_bytes()
    reasons = pd.read_csv(tmp_path / "from_files" / "quarantine.tsv", sep="\t").set_index("source")["reason"]
    assert "id 90000 missing from" in reasons["0090000.jpg"] and str(lmdb_dir) in reasons["0090000.jpg"]
