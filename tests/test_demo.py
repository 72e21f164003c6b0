"""Tests for the synthetic FashionStyle14 / ModaNet demo generator (fashion_rembg.demo)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import re

import lmdb
import numpy as np
import pytest
from PIL import Image, ImageFilter

from fashion_rembg.demo import FS14_STYLES, MODANET_CATEGORIES, generate_demo

STYLES = ("conservative", "dressy", "ethnic", "fairy", "feminine", "gal", "girlish",
          "kireime-casual", "lolita", "mode", "natural", "retro", "rock", "street")
MODANET = ["bag", "belt", "boots", "footwear", "outer", "dress", "sunglasses", "pants", "top",
           "shorts", "skirt", "headwear", "scarf/tie"]
SMALL = dict(seed=1, fs14_per_class=5, modanet_train=5, modanet_val=2, sod_train=3)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    counts = generate_demo(out, **SMALL)
    return out, counts


def _digest(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _load(out, split):
    return json.loads((out / "modanet" / "annotations" /
                       f"modanet2018_instances_{split}.json").read_text(encoding="utf-8"))


def _lmdb_items(out):
    env = lmdb.open(str(out / "modanet" / "photos.lmdb"), readonly=True, lock=False)
    try:
        with env.begin() as txn:
            return {bytes(k): bytes(v) for k, v in txn.cursor()}
    finally:
        env.close()


def _bg_pixels(img_path, mask_path):
    """Background pixels, keeping clear of the (blurred) figure boundary."""
    im = np.asarray(Image.open(img_path).convert("RGB"), np.float32)
    m = Image.open(mask_path)
    fg = np.asarray(m.filter(ImageFilter.MaxFilter(7))) > 0
    return im, ~fg, np.asarray(m) > 0


# ---------------------------------------------------------------- FashionStyle14 layout / splits
def test_constants():
    assert FS14_STYLES == STYLES
    assert [c["id"] for c in MODANET_CATEGORIES] == list(range(1, 14))
    assert [c["name"] for c in MODANET_CATEGORIES] == MODANET
    assert all(c["supercategory"] == "fashion" for c in MODANET_CATEGORIES)


def test_fs14_layout(demo):
    out, counts = demo
    root = out / "FashionStyle14_v1" / "dataset"
    assert sorted(p.name for p in root.iterdir()) == list(STYLES)
    for style in STYLES:
        files = sorted((root / style).iterdir())
        assert len(files) == SMALL["fs14_per_class"]
        for f in files:
            assert re.fullmatch(r"[0-9a-f]{32}\.jpg", f.name), f.name
            with Image.open(f) as im:
                assert im.format == "JPEG" and im.mode == "RGB"
                w, h = im.size
            assert 150 <= w <= 210 and h == round(1.5 * w)  # portrait
    assert counts["fashionstyle14"]["images"] == 14 * SMALL["fs14_per_class"]


def test_fs14_csv_splits(demo):
    out, _ = demo
    root = out / "FashionStyle14_v1"
    on_disk = {f"dataset/{p.parent.name}/{p.name}" for p in (root / "dataset").glob("*/*")}
    pat = re.compile(r"^dataset/(%s)/[0-9a-f]{32}\.jpg$" % "|".join(map(re.escape, STYLES)))
    splits = {}
    for sp in ("train", "val", "test"):
        text = (root / f"{sp}.csv").read_text(encoding="utf-8")
        assert text.endswith("\n")
        lines = text.splitlines()
        assert all(pat.match(line) for line in lines), lines[:3]  # also: no header row
        assert len(lines) == len(set(lines))
        splits[sp] = set(lines)
    assert not (splits["train"] & splits["val"] or splits["train"] & splits["test"]
                or splits["val"] & splits["test"])
    assert splits["train"] | splits["val"] | splits["test"] == on_disk
    for style in STYLES:  # stratified 60/20/20 of 5 -> 3/1/1
        per = [sum(line.split("/")[1] == style for line in splits[sp])
               for sp in ("train", "val", "test")]
        assert per == [3, 1, 1], (style, per)


# ---------------------------------------------------------------- ModaNet annotations + LMDB
def test_modanet_json_schema(demo):
    out, counts = demo
    tr, va = _load(out, "train"), _load(out, "val")
    keys = ["info", "images", "year", "licenses", "type", "annotations", "categories"]
    for doc in (tr, va):
        assert list(doc) == keys
        assert doc["year"] == 2018 and doc["type"] == "instances"
        assert doc["info"]["description"] == "MODA-NET 2018 Dataset"
        assert doc["categories"] == [{"supercategory": "fashion", "id": i, "name": n}
                                     for i, n in enumerate(MODANET, 1)]
        assert any(lic["id"] == 3 for lic in doc["licenses"])
        for im in doc["images"]:
            assert set(im) == {"file_name", "width", "id", "license", "height"}
            assert (im["width"], im["height"]) == (400, 600)
            assert im["file_name"] == "%07d.jpg" % im["id"]
            assert im["license"] == 3 and 30 <= im["id"] <= 132670
    assert va["annotations"] == []
    tr_ids = [im["id"] for im in tr["images"]]
    va_ids = [im["id"] for im in va["images"]]
    assert len(tr_ids) == SMALL["modanet_train"] and len(va_ids) == SMALL["modanet_val"]
    all_ids = sorted(tr_ids + va_ids)
    assert len(set(all_ids)) == len(all_ids)
    assert np.any(np.diff(all_ids) > 1)  # non-contiguous, like the real ids
    anns = tr["annotations"]
    assert len(anns) == counts["modanet"]["annotations"] >= 3 * len(tr_ids)
    assert len({a["id"] for a in anns}) == len(anns)
    multi = 0
    for a in anns:
        assert list(a) == ["area", "bbox", "segmentation", "image_id", "id", "category_id",
                           "iscrowd"]
        assert a["image_id"] in tr_ids and 1 <= a["category_id"] <= 13 and a["iscrowd"] == 0
        x, y, w, h = a["bbox"]
        assert x >= 0 and y >= 0 and w > 0 and h > 0 and x + w <= 400 and y + h <= 600
        assert isinstance(a["area"], int) and 0 < a["area"] <= w * h
        assert a["segmentation"] and all(isinstance(p, list) for p in a["segmentation"])
        for poly in a["segmentation"]:
            assert len(poly) >= 6 and len(poly) % 2 == 0
            xs, ys = np.array(poly[0::2]), np.array(poly[1::2])
            assert xs.min() >= 0 and xs.max() <= 400 and ys.min() >= 0 and ys.max() <= 600
            # polygon lies within the annotation's bbox
            assert xs.min() >= x - 1 and xs.max() <= x + w + 1
            assert ys.min() >= y - 1 and ys.max() <= y + h + 1
        multi += len(a["segmentation"]) > 1
    assert multi >= 1  # e.g. both shoes as one footwear instance
    assert counts["modanet"]["multi_polygon_annotations"] == multi


def test_modanet_loads_with_pycocotools(demo):
    from pycocotools.coco import COCO

    out, _ = demo
    path = out / "modanet" / "annotations" / "modanet2018_instances_train.json"
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(path))
    assert sorted(coco.getCatIds()) == list(range(1, 14))
    ann = coco.loadAnns(coco.getAnnIds())[0]
    m = coco.annToMask(ann)
    assert m.shape == (600, 400) and m.sum() > 0


def test_lmdb_keys_and_values(demo):
    out, counts = demo
    items = _lmdb_items(out)
    ids = [im["id"] for s in ("train", "val") for im in _load(out, s)["images"]]
    assert set(items) == {str(i).encode("ascii") for i in ids}
    assert counts["modanet"]["lmdb_entries"] == len(ids)
    for k, v in items.items():
        assert re.fullmatch(rb"[1-9][0-9]*", k), k  # undecorated decimal, no zero padding
        with Image.open(io.BytesIO(v)) as im:
            assert im.format == "JPEG" and im.mode == "RGB" and im.size == (400, 600)
    # PaperDoll ships no loose ModaNet images
    assert not list((out / "modanet").rglob("*.jpg"))


# ---------------------------------------------------------------- truth masks
def _truth_pairs(out):
    for img in sorted((out / "FashionStyle14_v1" / "dataset").glob("*/*.jpg")):
        yield img, out / "truth" / "fashionstyle14" / "dataset" / img.parent.name / (img.stem + ".png")


def test_truth_masks_binary_and_plausible(demo):
    out, _ = demo
    pairs = list(_truth_pairs(out))
    for k, v in _lmdb_items(out).items():
        pairs.append((io.BytesIO(v), out / "truth" / "modanet" / ("%07d.png" % int(k))))
    assert len(pairs) == 14 * 5 + 7
    for img, mpath in pairs:
        with Image.open(img) as im, Image.open(mpath) as m:
            assert m.mode == "L" and m.size == im.size
            a = np.asarray(m)
        assert set(np.unique(a)) <= {0, 255}
        frac = (a > 0).mean()
        assert 0.08 <= frac <= 0.65, (mpath, frac)


def test_polygons_lie_inside_truth_foreground(demo):
    from pycocotools import mask as mask_utils

    out, _ = demo
    tr = _load(out, "train")
    inside = total = 0
    for a in tr["annotations"]:
        truth = np.asarray(Image.open(out / "truth" / "modanet" / ("%07d.png" % a["image_id"]))) > 0
        rle = mask_utils.merge(mask_utils.frPyObjects(a["segmentation"], 600, 400))
        m = mask_utils.decode(rle).astype(bool)
        assert m.sum() > 0
        frac = (m & truth).sum() / m.sum()
        assert frac >= 0.6, (a["category_id"], frac)
        inside += (m & truth).sum()
        total += m.sum()
        # the polygon area agrees with the annotated visible area
        assert 0.6 <= m.sum() / a["area"] <= 1.6
    assert inside / total >= 0.93


# ---------------------------------------------------------------- SOD set and info
def test_sod_train_set(demo):
    out, counts = demo
    imgs = sorted((out / "sod_train" / "images").iterdir())
    masks = sorted((out / "sod_train" / "masks").iterdir())
    assert [p.name for p in imgs] == ["%05d.jpg" % k for k in range(SMALL["sod_train"])]
    assert [p.name for p in masks] == ["%05d.png" % k for k in range(SMALL["sod_train"])]
    dataset_hashes = set(_digest(out / "FashionStyle14_v1").values())
    dataset_hashes |= {hashlib.sha256(v).hexdigest() for v in _lmdb_items(out).values()}
    for ip, mp in zip(imgs, masks):
        with Image.open(ip) as im, Image.open(mp) as m:
            assert m.size == im.size and m.mode == "L"
            a = np.asarray(m)
        assert set(np.unique(a)) <= {0, 255} and 0.05 < (a > 0).mean() < 0.7
        assert hashlib.sha256(ip.read_bytes()).hexdigest() not in dataset_hashes
    assert counts["sod_train"] == SMALL["sod_train"]


def test_demo_info(demo):
    out, counts = demo
    info = json.loads((out / "demo_info.json").read_text(encoding="utf-8"))
    assert info["counts"] == counts
    for k, v in SMALL.items():
        assert info["args"][k] == v
    assert info["args"]["clutter"] == 0.7 and info["args"]["bg_label_correlation"] == 0.0
    assert counts["fashionstyle14"]["train"] + counts["fashionstyle14"]["val"] + \
        counts["fashionstyle14"]["test"] == 70


# ---------------------------------------------------------------- determinism / overwrite policy
def test_deterministic_and_seed_sensitive(tmp_path):
    args = dict(fs14_per_class=3, modanet_train=2, modanet_val=1, sod_train=2)
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate_demo(a, seed=7, **args)
    generate_demo(b, seed=7, **args)
    da, db = _digest(a), _digest(b)
    assert da == db and len(da) > 14 * 3
    assert "modanet/photos.lmdb/data.mdb" in da
    generate_demo(c, seed=8, **args)
    dc = _digest(c)
    assert set(dc) != set(da)  # FS14 names come from the seed
    for f in ("modanet/photos.lmdb/data.mdb", "modanet/annotations/modanet2018_instances_train.json",
              "sod_train/images/00000.jpg"):
        assert dc[f] != da[f]
    # regenerating over a previous demo replaces it completely (no stale files)
    stale = a / "FashionStyle14_v1" / "dataset" / "rock" / "stale.jpg"
    stale.write_bytes(b"x")
    generate_demo(a, seed=7, **args)
    assert not stale.exists() and _digest(a) == db


def test_refuses_to_overwrite_foreign_data(tmp_path):
    real = tmp_path / "FashionStyle14_v1" / "dataset" / "rock"
    real.mkdir(parents=True)
    (real / "keep.jpg").write_bytes(b"real")
    with pytest.raises(FileExistsError, match="demo_info.json"):
        generate_demo(tmp_path, fs14_per_class=3, modanet_train=1, modanet_val=0, sod_train=0)
    assert (real / "keep.jpg").read_bytes() == b"real"


@pytest.mark.parametrize("kw, name", [
    ({"seed": -1}, "seed"), ({"seed": 1.5}, "seed"), ({"seed": True}, "seed"),
    ({"fs14_per_class": 2}, "fs14_per_class"), ({"modanet_train": 0}, "modanet_train"),
    ({"modanet_val": -1}, "modanet_val"), ({"sod_train": -3}, "sod_train"),
    ({"clutter": 1.5}, "clutter"), ({"clutter": float("nan")}, "clutter"),
    ({"bg_label_correlation": -0.1}, "bg_label_correlation"),
    ({"bg_label_correlation": "0.5"}, "bg_label_correlation"),
])
def test_argument_validation(tmp_path, kw, name):
    out = tmp_path / "never"
    with pytest.raises(ValueError, match=name):
        generate_demo(out, **kw)
    assert not out.exists()  # validated before anything is written


# ---------------------------------------------------------------- realism knobs
def _class_bg_means(out):
    means, fg_lum = {}, {}
    for img, mpath in _truth_pairs(out):
        im, bg, fg = _bg_pixels(img, mpath)
        means.setdefault(img.parent.name, []).append(im[bg].mean(0))
        fg_lum.setdefault(img.parent.name, []).append(im[fg].mean())
    return ({k: np.mean(v, 0) for k, v in means.items()},
            {k: float(np.mean(v)) for k, v in fg_lum.items()})


def test_bg_label_correlation_moves_class_background_means(tmp_path):
    args = dict(seed=2, fs14_per_class=6, modanet_train=1, modanet_val=0, sod_train=0)
    generate_demo(tmp_path / "c0", bg_label_correlation=0.0, **args)
    generate_demo(tmp_path / "c1", bg_label_correlation=1.0, **args)
    m0, fg0 = _class_bg_means(tmp_path / "c0")
    m1, fg1 = _class_bg_means(tmp_path / "c1")
    spread0 = np.std(np.array(list(m0.values())), axis=0).mean()
    spread1 = np.std(np.array(list(m1.values())), axis=0).mean()
    assert spread1 > 25 and spread1 > 2.5 * spread0, (spread0, spread1)
    # the figures themselves do not depend on the background setting
    assert fg0 == pytest.approx(fg1, abs=3.0)
    # ... and carry the style: pastel "fairy" garments are brighter than mostly-black "rock"
    assert fg0["fairy"] > fg0["rock"] + 15


def test_clutter_zero_is_smooth(tmp_path):
    args = dict(seed=4, fs14_per_class=3, modanet_train=1, modanet_val=0, sod_train=0)
    grads = {}
    for c in (0.0, 1.0):
        out = tmp_path / f"clutter{c}"
        generate_demo(out, clutter=c, **args)
        g = []
        for img, mpath in _truth_pairs(out):
            im, bg, _ = _bg_pixels(img, mpath)
            gx = np.abs(np.diff(im, axis=1)).mean(2)[bg[:, 1:] & bg[:, :-1]]
            gy = np.abs(np.diff(im, axis=0)).mean(2)[bg[1:] & bg[:-1]]
            g.append((gx.mean() + gy.mean()) / 2)
        grads[c] = float(np.mean(g))
    assert grads[0.0] < 1.0 and grads[1.0] > 4 * grads[0.0], grads
    assert math.isfinite(grads[1.0])
