"""The demo's raw formats, as the real datasets ship them: FashionStyle14 (style folders + split CSVs),
ModaNet (PaperDoll LMDB of JPEGs + COCO annotation JSON), the DUTS-like saliency set, the true masks
beside them, and ``demo_info.json``."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import contourpy  # via matplotlib; marching squares for the ModaNet polygons
import lmdb
import numpy as np
from PIL import Image

from .scenes import background_spec, render_image
from .styles import FS14_STYLES, MODANET_CATEGORIES, MODANET_NAMES, sample_outfit

JPEG_QUALITY = 90
MODANET_SIZE = (400, 600)  # W x H, every real ModaNet image
MODANET_ID_RANGE = (30, 132670)  # inclusive, as in the real val file
FS14_DIR = "FashionStyle14_v1"
_CAT_ID = {n: i for i, n in enumerate(MODANET_NAMES, start=1)}

# Independent random streams (first entropy word after the seed).
_STREAM_FS14, _STREAM_MODANET, _STREAM_SOD, _STREAM_SPLIT, _STREAM_IDS = 1, 2, 3, 4, 5


def stream_rng(seed, stream, *idx):
    return np.random.default_rng(np.random.SeedSequence([seed, stream, *idx]))


def _jpeg_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=JPEG_QUALITY, optimize=False)
    return buf.getvalue()


def _png_write(arr: np.ndarray, path: Path) -> None:
    Image.fromarray(arr, "L").save(path, "PNG", compress_level=6)


# ----------------------------------------------------------------------------------------------
# ModaNet polygons from the visible instance map
# ----------------------------------------------------------------------------------------------
def _simplify(pts: np.ndarray, tol: float) -> np.ndarray:
    """Douglas-Peucker on a closed ring (first point == last point or not)."""
    if len(pts) < 4:
        return pts
    keep = np.zeros(len(pts), bool)
    keep[0] = keep[-1] = True
    stack = [(0, len(pts) - 1)]
    while stack:
        i, j = stack.pop()
        if j <= i + 1:
            continue
        a, b = pts[i], pts[j]
        seg = b - a
        L = math.hypot(*seg)
        q = pts[i + 1:j] - a
        dist = np.abs(q[:, 0] * seg[1] - q[:, 1] * seg[0]) / L if L > 1e-9 else np.hypot(q[:, 0], q[:, 1])
        k = int(np.argmax(dist))
        if dist[k] > tol:
            keep[i + 1 + k] = True
            stack += [(i, i + 1 + k), (i + 1 + k, j)]
    return pts[keep]


def _visible_annotation(lab: np.ndarray, iid: int, W: int, H: int, min_area: int):
    m = lab == iid
    area = int(m.sum())
    if area < min_area:
        return None
    rows = np.flatnonzero(m.any(1))
    cols = np.flatnonzero(m.any(0))
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    polys = mask_polygons(m, W, H, min_area)
    if not polys:
        return None
    bbox = [int(c0), int(r0), int(c1 - c0), int(r1 - r0)]
    return {"area": area, "bbox": bbox, "segmentation": polys}


def mask_polygons(m: np.ndarray, W: int, H: int, min_area: int, tol: float = 0.9) -> list[list[int]]:
    """COCO polygons (integer pixel-edge coordinates) of a boolean mask's outer rings, specks dropped."""
    rows = np.flatnonzero(m.any(1))
    cols = np.flatnonzero(m.any(0))
    if not len(rows):
        return []
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    z = np.zeros((r1 - r0 + 2, c1 - c0 + 2), np.float32)
    z[1:-1, 1:-1] = m[r0:r1, c0:c1]
    gen = contourpy.contour_generator(z=z, fill_type="OuterOffset")
    rings, offsets = gen.filled(0.5, 1.5)
    polys = []
    for pts, off in zip(rings, offsets):
        outer = pts[off[0]:off[1]].astype(np.float64)
        # padded grid index -> COCO pixel-edge coordinates
        outer[:, 0] += c0 - 0.5
        outer[:, 1] += r0 - 0.5
        ring_area = 0.5 * abs(np.dot(outer[:-1, 0], outer[1:, 1]) - np.dot(outer[1:, 0], outer[:-1, 1]))
        if ring_area < max(8.0, min_area / 4):
            continue  # drop specks
        simp = _simplify(outer, tol)
        if np.allclose(simp[0], simp[-1]):
            simp = simp[:-1]
        simp = np.rint(simp)
        simp[:, 0] = np.clip(simp[:, 0], 0, W)
        simp[:, 1] = np.clip(simp[:, 1], 0, H)
        dup = np.all(simp == np.roll(simp, 1, axis=0), axis=1)
        simp = simp[~dup]
        if len(simp) >= 3:
            polys.append([int(v) for v in simp.reshape(-1)])
    return polys


_MODANET_INFO = {"contributor": "eBay CoreAI research", "date_created": "2018/07/03",
                 "version": "1.0", "description": "MODA-NET 2018 Dataset"}
_LICENSES = [
    {"url": "http://creativecommons.org/licenses/by-nc-sa/4.0/", "id": 1,
     "name": "Attribution-NonCommercial-ShareAlike License"},
    {"url": "http://creativecommons.org/licenses/by-sa/4.0/", "id": 2,
     "name": "Attribution-ShareAlike License"},
    {"url": "http://creativecommons.org/licenses/by-nc/4.0/", "id": 3,
     "name": "Attribution-NonCommercial License"},
    {"url": "http://creativecommons.org/licenses/by-nc-nd/4.0/", "id": 4,
     "name": "Attribution-NonCommercial-NoDerivs License"},
    {"url": "http://creativecommons.org/licenses/by/4.0/", "id": 5, "name": "Attribution License"},
    {"url": "http://creativecommons.org/licenses/by-nd/4.0/", "id": 6,
     "name": "Attribution-NoDerivs License"},
    {"url": "http://flickr.com/commons/usage/", "id": 7, "name": "No known copyright restrictions"},
    {"url": "http://www.usa.gov/copyright.shtml", "id": 8, "name": "United States Government Work"},
]


def _coco(images: list, annotations: list) -> dict:
    # key order as in the real ModaNet files
    return {"info": dict(_MODANET_INFO), "images": images, "year": 2018,
            "licenses": [dict(x) for x in _LICENSES], "type": "instances",
            "annotations": annotations, "categories": [dict(c) for c in MODANET_CATEGORIES]}





# ----------------------------------------------------------------------------------------------
# The data sets
# ----------------------------------------------------------------------------------------------
def write_fashionstyle14(out: Path, *, seed: int, per_class: int, clutter: float, bg_label_correlation: float,
                         style_signal: float, style_overlap: float) -> dict[str, list[str]]:
    """``FashionStyle14_v1/dataset/<style>/<32hex>.jpg`` + header-less split CSVs, true masks under
    ``truth/fashionstyle14``. Returns the split lists."""
    fs_root = out / FS14_DIR
    truth_fs = out / "truth" / "fashionstyle14"
    splits = {"train": [], "val": [], "test": []}
    for si, style in enumerate(FS14_STYLES):
        (fs_root / "dataset" / style).mkdir(parents=True, exist_ok=True)
        (truth_fs / "dataset" / style).mkdir(parents=True, exist_ok=True)
        stems = []
        for j in range(per_class):
            rng, rng_bg = stream_rng(seed, _STREAM_FS14, si, j, 0), stream_rng(seed, _STREAM_FS14, si, j, 1)
            stem = rng.bytes(16).hex()
            w = int(rng.integers(150, 211))
            h = int(round(1.5 * w))
            outfit = sample_outfit(rng, si, signal=style_signal, overlap=style_overlap)
            spec = background_spec(rng_bg, si, bg_label_correlation)
            img, mask, _ = render_image(rng, rng_bg, w, h, outfit, spec, clutter, zoom=rng.random() < 0.1)
            (fs_root / "dataset" / style / f"{stem}.jpg").write_bytes(_jpeg_bytes(img))
            _png_write(mask, truth_fs / "dataset" / style / f"{stem}.png")
            stems.append(stem)
        if len(set(stems)) != len(stems):  # 128-bit names: practically impossible
            raise RuntimeError(f"generate_demo: duplicate FS14 file name in style {style}")
        order = stream_rng(seed, _STREAM_SPLIT, si).permutation(len(stems))
        n_val = max(1, int(round(0.2 * len(stems))))
        n_test = max(1, int(round(0.2 * len(stems))))
        n_train = len(stems) - n_val - n_test
        parts = {"train": order[:n_train], "val": order[n_train:n_train + n_val],
                 "test": order[n_train + n_val:]}
        for sp, idx in parts.items():
            splits[sp] += [f"dataset/{style}/{stems[k]}.jpg" for k in sorted(idx, key=lambda k: stems[k])]
    for sp, lines in splits.items():
        (fs_root / f"{sp}.csv").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return splits


def write_modanet(out: Path, *, seed: int, n_train: int, n_val: int, clutter: float) -> dict[str, int]:
    """``modanet/annotations/modanet2018_instances_{train,val}.json`` (COCO, val without annotations),
    ``modanet/photos.lmdb`` (key ``str(id)``, value JPEG bytes), true masks under ``truth/modanet``.
    Returns the counts of ``demo_info.json``."""
    W, H = MODANET_SIZE
    md_root = out / "modanet"
    (md_root / "annotations").mkdir(parents=True, exist_ok=True)
    truth_md = out / "truth" / "modanet"
    truth_md.mkdir(parents=True, exist_ok=True)
    n_ids = MODANET_ID_RANGE[1] - MODANET_ID_RANGE[0] + 1
    ids = MODANET_ID_RANGE[0] + stream_rng(seed, _STREAM_IDS).choice(n_ids, n_train + n_val, replace=False)
    train_ids = sorted(int(i) for i in ids[:n_train])
    val_ids = sorted(int(i) for i in ids[n_train:])
    blobs: dict[int, bytes] = {}
    anns: list = []
    n_multi = 0
    for split_ids, annotate in ((train_ids, True), (val_ids, False)):
        for pid in split_ids:
            rng, rng_bg = stream_rng(seed, _STREAM_MODANET, pid, 0), stream_rng(seed, _STREAM_MODANET, pid, 1)
            outfit = sample_outfit(rng, int(rng.integers(len(FS14_STYLES))), boost_accessories=True)
            spec = background_spec(rng_bg, None, 0.0)
            img, mask, P = render_image(rng, rng_bg, W, H, outfit, spec, clutter, zoom=rng.random() < 0.05)
            blobs[pid] = _jpeg_bytes(img)
            _png_write(mask, truth_md / f"{pid:07d}.png")
            if not annotate:
                continue
            lab = np.asarray(P.label)
            for ins in P.inst:  # draw order: back to front, so painting in order gives the map
                if ins["cat"] is None:
                    continue
                a = _visible_annotation(lab, ins["id"], W, H, min_area=30)
                if a is None:
                    continue
                n_multi += len(a["segmentation"]) > 1
                anns.append({"area": a["area"], "bbox": a["bbox"], "segmentation": a["segmentation"],
                             "image_id": pid, "id": len(anns) + 1, "category_id": _CAT_ID[ins["cat"]],
                             "iscrowd": 0})

    def image_entries(id_list):
        return [{"file_name": "%07d.jpg" % i, "width": W, "id": i, "license": 3, "height": H}
                for i in id_list]

    for name, doc in (("train", _coco(image_entries(train_ids), anns)),
                      ("val", _coco(image_entries(val_ids), []))):
        (md_root / "annotations" / f"modanet2018_instances_{name}.json").write_text(
            json.dumps(doc), encoding="utf-8")
    total = sum(len(b) for b in blobs.values())
    env = lmdb.open(str(md_root / "photos.lmdb"), map_size=max(1 << 24, 4 * total + (1 << 22)),
                    subdir=True, lock=False, meminit=True)
    try:
        with env.begin(write=True) as txn:
            for pid in sorted(blobs, key=lambda i: str(i).encode("ascii")):
                txn.put(str(pid).encode("ascii"), blobs[pid])
    finally:
        env.close()
    return {"train_images": len(train_ids), "val_images": len(val_ids), "annotations": len(anns),
            "multi_polygon_annotations": int(n_multi), "lmdb_entries": len(blobs)}


def write_sod_train(out: Path, *, seed: int, n: int, clutter: float) -> None:
    """``sod_train/{images,masks}``: a small salient-object training set (stands in for DUTS)."""
    sod_img = out / "sod_train" / "images"
    sod_msk = out / "sod_train" / "masks"
    sod_img.mkdir(parents=True, exist_ok=True)
    sod_msk.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        rng, rng_bg = stream_rng(seed, _STREAM_SOD, k, 0), stream_rng(seed, _STREAM_SOD, k, 1)
        shape = rng.random()
        if shape < 0.5:
            w = int(rng.integers(150, 261))
            h = int(round(1.5 * w))
        elif shape < 0.8:
            w, h = 300, 450
        else:
            w, h = int(rng.integers(300, 401)), 300
        outfit = sample_outfit(rng, int(rng.integers(len(FS14_STYLES))), boost_accessories=shape >= 0.5)
        spec = background_spec(rng_bg, None, 0.0)
        img, mask, _ = render_image(rng, rng_bg, w, h, outfit, spec, clutter, zoom=rng.random() < 0.1)
        (sod_img / f"{k:05d}.jpg").write_bytes(_jpeg_bytes(img))
        _png_write(mask, sod_msk / f"{k:05d}.png")


def write_info(out: Path, args: dict, counts: dict) -> None:
    # "generator" keeps the module's former name: demo_info.json stays byte-identical to earlier demos.
    info = {"generator": "fashion_rembg.datasets.demo", "format_version": 1,
            "args": args | {"jpeg_quality": JPEG_QUALITY}, "counts": counts}
    (out / "demo_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
