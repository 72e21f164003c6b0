"""A Fashionpedia look-alike in the real raw format (reference datasets.md C), so the demo goes through
the same reader as the real data (``datasets/fashionpedia.py``):

* ``instances_attributes_{train,val}2020.json``: COCO plus ``attributes`` / ``attribute_ids``, the
  exact 46 categories (0-based ids), image and annotation ids restarting at 0 in each file, 12-digit
  zero-padded file names; segmentations mix polygons (most), compressed RLE (some), uncompressed RLE
  (a few) and ``iscrowd: 1`` regions (RLE), with one crowd-only train image;
* ``info_test2020.json`` (test images, no labels);
* ``train2020.zip`` (folder ``train/``) and ``val_test2020.zip`` (folder ``test/``: the val images and
  the unlabelled test images), with fixed timestamps;
* ``truth/<train|test>/<stem>.png`` true foreground masks (not raw data), ``demo_info.json``.

Figures come from the same painters as the other look-alikes; the drawn garments map to the 27
apparel categories, and sleeves, necklines and belt buckles (parts, derived from the figure's
geometry) give ``classes: all`` something to learn. Its own random stream: the FashionStyle14 and
ModaNet look-alikes stay byte-identical.
"""

from __future__ import annotations

import functools
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from pycocotools import mask as mask_utils
from scipy import ndimage

from ..datasets.fashionpedia import CATEGORIES, GARMENTS
from .arguments import check_int, check_unit
from .figures import Figure, chain, ellipse, torso_outline
from .scenes import background_spec, render_image
from .styles import FS14_STYLES, sample_outfit
from .writers import _LICENSES, JPEG_QUALITY, _jpeg_bytes, _png_write, mask_polygons, stream_rng

__all__ = ["EXTRAS", "FASHIONPEDIA_CATEGORIES", "FashionpediaImage", "fashionpedia_image", "generate_fashionpedia"]

_STREAM_FASHIONPEDIA, _STREAM_FASHIONPEDIA_NAMES = 6, 7  # after writers' streams 1-5
_OFFICIAL = {"train": 0, "val": 1, "test": 2}  # stream index of each official split

_SUPER = (["upperbody"] * 6 + ["lowerbody"] * 3 + ["wholebody"] * 4 + ["head"] * 3 + ["neck"]
          + ["arms and hands"] * 2 + ["waist"] + ["legs and feet"] * 4 + ["others", "neck", "others"]
          + ["garment parts"] * 7 + ["closures"] * 2 + ["decorations"] * 10)
FASHIONPEDIA_CATEGORIES = tuple(
    {"id": i, "name": n, "supercategory": s, "level": 2, "taxonomy_id": f"cat_{i:02d}"}
    for i, (n, s) in enumerate(zip(CATEGORIES, _SUPER, strict=True)))
_CAT = {n.split(",")[0]: i for i, n in enumerate(CATEGORIES)}  # "shirt" -> 0, "sleeve" -> 31, ...

# A few attributes with the real fields (the real file has 294, ids non-contiguous up to 340).
_ATTRIBUTES = {
    "mini (length)": 115, "knee (length)": 117, "midi": 118, "maxi (length)": 119,
    "sleeveless": 160, "short (length)": 161, "elbow-length": 162, "wrist-length": 164,
    "tight (fit)": 137, "loose (fit)": 139, "plain (pattern)": 317, "stripe": 326,
}
# What a figure may wear besides its main outfit (top with a bottom, or a dress): Fashionpedia short
# name -> the outfit entry that draws it (the ``extras`` argument keeps a subset).
EXTRAS = ("jacket", "coat", "shoe", "bag", "belt", "hat", "headband", "glasses", "scarf", "tie")


def _extra_category(key: str, outfit: dict) -> str | None:
    """Fashionpedia short name of an optional outfit entry (None: part of the main outfit)."""
    if key == "outer":
        return "coat" if outfit["outer"]["len"] == "long" else "jacket"
    if key == "hat":
        return "headband" if outfit["hat"]["kind"] == "bow" else "hat"
    return {"shoes": "shoe", "bag": "bag", "belt": "belt", "sunglasses": "glasses", "scarf": "scarf",
            "tie": "tie"}.get(key)


_SKIRT_LEN = {"mini": "mini (length)", "knee": "knee (length)", "midi": "midi", "maxi": "maxi (length)"}
_SLEEVE_LEN = {"none": "sleeveless", "short": "short (length)", "elbow": "elbow-length", "long": "wrist-length"}

_INFO = {"year": 2020, "version": "1.0", "description": "Fashionpedia look-alike (fashion-rembg demo)",
         "contributor": "fashion-rembg demo generator", "url": "https://fashionpedia.github.io/home/",
         "date_created": "2020-05-01"}
_ZIP_TIME = (2020, 5, 1, 0, 0, 0)
_check_int = functools.partial(check_int, "generate_fashionpedia")
_check_unit = functools.partial(check_unit, "generate_fashionpedia")
_RAW_FILES = ("instances_attributes_train2020.json", "instances_attributes_val2020.json", "info_test2020.json",
              "train2020.zip", "val_test2020.zip")


class FashionpediaImage:
    """One rendered image and its visible instances ``(category_id, bool mask, attribute names)``."""

    def __init__(self, img: Image.Image, foreground: np.ndarray, instances: list):
        self.img, self.foreground, self.instances = img, foreground, instances


def _draw_mask(fig: Figure, W: int, H: int, polygons) -> np.ndarray:
    im = Image.new("1", (W, H), 0)
    d = ImageDraw.Draw(im)
    for pts in polygons:
        d.polygon([tuple(q) for q in fig.px(pts)], fill=1)
    return np.asarray(im, bool)


def _garment_category(cat: str, outfit: dict, ties_seen: int) -> tuple[int, list[str]]:
    """ModaNet-style painter category -> (Fashionpedia id, attribute names)."""
    if cat == "top":
        t = outfit["top"]
        return _CAT["shirt" if t["hem"] == "tucked" else "top"], [_SLEEVE_LEN[t["sleeve"]]]
    if cat == "dress":
        d = outfit["dress"]
        return _CAT["dress"], [_SKIRT_LEN[d["len"]], _SLEEVE_LEN[d["sleeve"]]]
    if cat == "skirt":
        return _CAT["skirt"], [_SKIRT_LEN[outfit["skirt"]["len"]]]
    if cat == "pants":
        return _CAT["pants"], ["tight (fit)" if outfit["pants"]["fit"] == "skinny" else "loose (fit)"]
    if cat == "outer":
        return _CAT["coat" if outfit["outer"]["len"] == "long" else "jacket"], []
    if cat == "scarf/tie":  # the tie is painted before the scarf (figures.PAINTERS order)
        return _CAT["tie" if "tie" in outfit and ties_seen == 0 else "scarf"], []
    if cat == "headwear":
        return _CAT["headband" if outfit["hat"]["kind"] == "bow" else "hat"], []
    simple = {"boots": "shoe", "footwear": "shoe", "bag": "bag", "belt": "belt", "sunglasses": "glasses",
              "shorts": "shorts"}
    return _CAT[simple[cat]], []


def _parts(fig: Figure, W: int, H: int, cat: int, visible: np.ndarray, outfit: dict, min_area: int) -> list:
    """Garment parts the painters draw without naming them: sleeves, the neckline, a belt's buckle."""
    parts = []
    if cat in (_CAT["shirt"], _CAT["top"], _CAT["dress"], _CAT["jacket"], _CAT["coat"]):
        torso = _draw_mask(fig, W, H, [torso_outline(fig)])
        for side in (-1, 1):
            arm = _draw_mask(fig, W, H, [chain([fig.sh[side], fig.el[side], fig.wr[side]], [0.75, 0.6, 0.5]),
                                         ellipse(*fig.sh[side], 0.3, 0.28, 12)])
            parts.append((_CAT["sleeve"], visible & arm & ~torso, []))
    if cat in (_CAT["shirt"], _CAT["top"], _CAT["dress"]):
        neck = outfit["dress" if cat == _CAT["dress"] else "top"]["neck"]
        parts.append((_CAT["neckline"], visible & _draw_mask(fig, W, H, [ellipse(0, 1.22 + neck, 0.3, 0.12, 16)]), []))
    if cat == _CAT["belt"]:  # the painter outlines a buckle at the figure's centre line
        Y, X = np.mgrid[0:H, 0:W] + 0.5
        local_x = (fig.cos * (X - fig.cx) + fig.sin * (Y - fig.top)) / (fig.u * fig.wscale)
        parts.append((_CAT["buckle"], visible & (np.abs(local_x) <= 0.1), []))
    return [p for p in parts if p[1].sum() >= min_area]


def fashionpedia_image(seed: int, official: str, index: int, size: tuple[int, int], clutter: float,
                       min_area: int = 12, extras=None, close_up: float = 0.05) -> FashionpediaImage:
    """The ``index``-th image of an official split (``train``/``val``/``test``), about ``size`` (W, H).
    ``extras``: the optional garments (``EXTRAS``) figures may wear, None = all; ``close_up``: share
    of close-ups (feet out of frame, garments larger)."""
    rng = stream_rng(seed, _STREAM_FASHIONPEDIA, _OFFICIAL[official], index, 0)
    rng_bg = stream_rng(seed, _STREAM_FASHIONPEDIA, _OFFICIAL[official], index, 1)
    W = int(round(size[0] * rng.uniform(0.8, 1.0)))  # sizes vary, as in the real set
    H = int(round(size[1] * rng.uniform(0.8, 1.0)))
    outfit = sample_outfit(rng, int(rng.integers(len(FS14_STYLES))), boost_accessories=True)
    if extras is not None:  # dropped after sampling: the rest of the outfit is the one extras=None gives
        outfit = {k: v for k, v in outfit.items() if _extra_category(k, outfit) in (None, *extras)}
    img, fg, P = render_image(rng, rng_bg, W, H, outfit, background_spec(rng_bg, None, 0.0), clutter,
                              zoom=rng.random() < close_up)
    lab = np.asarray(P.label)
    instances, ties_seen = [], 0
    for ins in P.inst:
        if ins["cat"] is None:
            continue
        cat, attrs = _garment_category(ins["cat"], outfit, ties_seen)
        ties_seen += ins["cat"] == "scarf/tie"
        visible = lab == ins["id"]
        if visible.sum() < min_area:
            continue
        if cat == _CAT["shoe"]:  # one instance per shoe, as Fashionpedia annotates them
            comps, n = ndimage.label(visible)
            pieces = [comps == k for k in range(1, n + 1)]
        else:
            pieces = [visible]
        for piece in pieces:
            if piece.sum() >= min_area:
                instances.append((cat, piece, attrs))
                instances += _parts(P.fig, W, H, cat, piece, outfit, min_area)
    return FashionpediaImage(img, fg, instances)


def _segmentation(mask: np.ndarray, encoding: str, W: int, H: int, min_area: int):
    """(segmentation, pycocotools RLE of what it encodes) or None when no polygon survives."""
    if encoding == "polygon":
        polys = mask_polygons(mask, W, H, min_area, tol=0.5)
        if not polys:
            return None
        return polys, mask_utils.merge(mask_utils.frPyObjects(polys, H, W))
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    if encoding == "rle":
        return {"counts": rle["counts"].decode("ascii"), "size": [H, W]}, rle
    flat = mask.astype(np.uint8).ravel(order="F")  # uncompressed RLE: column-major runs, zeros first
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]])
    counts = ([0] if flat[0] else []) + [int(c) for c in np.diff(bounds)]
    return {"counts": counts, "size": [H, W]}, rle


def _regions(pic: FashionpediaImage, rng, crowd_only: bool) -> list[tuple]:
    """(category, mask, attribute names, iscrowd) to annotate. A crowd-only image has one crowd region
    per garment category (no parts); elsewhere a pair of shoes is now and then one crowd region."""
    if crowd_only:
        groups: dict[int, np.ndarray] = {}
        for cat, mask, _ in pic.instances:
            if cat < GARMENTS:
                groups[cat] = groups[cat] | mask if cat in groups else mask
        return [(cat, mask, [], 1) for cat, mask in groups.items()]
    shoes = [mask for cat, mask, _ in pic.instances if cat == _CAT["shoe"]]
    if len(shoes) == 2 and rng.random() < 0.15:
        return [(cat, mask, attrs, 0) for cat, mask, attrs in pic.instances if cat != _CAT["shoe"]] + \
            [(_CAT["shoe"], shoes[0] | shoes[1], [], 1)]
    return [(cat, mask, attrs, 0) for cat, mask, attrs in pic.instances]


def _annotations(pic: FashionpediaImage, image_id: int, first_ann_id: int, rng, crowd_only: bool,
                 min_area: int) -> list[dict]:
    """Mostly polygons, some compressed RLE, a few uncompressed RLE (also every crowd region, as in COCO)."""
    H, W = pic.foreground.shape
    anns = []
    for cat, mask, attrs, crowd in _regions(pic, rng, crowd_only):
        u = rng.random()
        encoding = "uncompressed" if crowd or u < 0.07 else "rle" if u < 0.25 else "polygon"
        seg = _segmentation(mask, encoding, W, H, min_area)
        if seg is None:
            continue
        segmentation, rle = seg
        anns.append({"id": first_ann_id + len(anns), "image_id": image_id, "category_id": cat,
                     "attribute_ids": sorted(_ATTRIBUTES[a] for a in attrs),
                     "segmentation": segmentation, "bbox": [round(float(v), 2) for v in mask_utils.toBbox(rle)],
                     "area": int(mask_utils.area(rle)), "iscrowd": crowd})
    return anns


def _image_entry(image_id: int, file_name: str, W: int, H: int, rng) -> dict:
    return {"id": image_id, "width": W, "height": H, "file_name": file_name, "license": int(rng.integers(1, 9)),
            "time_captured": "March-August, 2018", "original_url": f"https://example.invalid/{file_name}",
            "isstatic": 1, "kaggle_id": rng.bytes(16).hex()}


def _document(images: list, annotations: list) -> dict:
    # key order as the cvdfoundation README lists it
    return {"info": dict(_INFO), "categories": [dict(c) for c in FASHIONPEDIA_CATEGORIES],
            "attributes": [{"id": i, "name": n, "supercategory": "look-alike", "level": 1,
                            "taxonomy_id": f"att_{i:03d}"} for n, i in sorted(_ATTRIBUTES.items(), key=lambda x: x[1])],
            "images": images, "annotations": annotations, "licenses": [dict(x) for x in _LICENSES]}


def _write_zip(path: Path, folder: str, files: dict[str, bytes]) -> None:
    """Byte-stable zip: sorted entries, fixed timestamps and attributes; JPEGs stored, not deflated."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        entries = [(f"{folder}/", None)] + [(f"{folder}/{name}", files[name]) for name in sorted(files)]
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.create_system = 3
            info.external_attr = (0o40755 << 16) | 0x10 if data is None else 0o100644 << 16
            zf.writestr(info, b"" if data is None else data)


def _prepare(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"generate_fashionpedia: out_dir {out} exists and is not a directory")
    present = [e for e in (*_RAW_FILES, "truth") if (out / e).exists()]
    if present and not (out / "demo_info.json").is_file():
        raise FileExistsError(f"generate_fashionpedia: {out} already holds {', '.join(present)} but no "
                              "demo_info.json; refusing to overwrite what may be real data. Choose an empty out_dir.")
    for e in present:
        shutil.rmtree(out / e) if (out / e).is_dir() else (out / e).unlink()
    out.mkdir(parents=True, exist_ok=True)


def generate_fashionpedia(out_dir, *, seed: int = 0, train: int = 120, val: int = 30, test_unlabelled: int = 10,
                          size: tuple[int, int] = (128, 192), clutter: float = 0.7, crowd_only_images: int = 1,
                          min_area: int = 12, extras=None, close_up: float = 0.05) -> dict:
    """Write the Fashionpedia look-alike into ``out_dir`` (see the module doc); returns its counts (also in
    ``out_dir/demo_info.json``). Identical arguments give byte-identical files.

    ``extras``: the optional garments figures may wear besides their main outfit, a subset of ``EXTRAS``
    (None: all; ``[]``: the main outfit only); ``close_up``: the share of close-ups (feet out of frame)."""
    seed = _check_int("seed", seed, 0)
    train, val = _check_int("train", train, 1), _check_int("val", val, 1)
    test_unlabelled = _check_int("test_unlabelled", test_unlabelled, 0)
    crowd_only_images = _check_int("crowd_only_images", crowd_only_images, 0, train - 1)
    min_area = _check_int("min_area", min_area, 1)
    clutter = _check_unit("clutter", clutter)
    close_up = _check_unit("close_up", close_up)
    if extras is not None:
        if isinstance(extras, str) or not all(e in EXTRAS for e in extras):
            raise ValueError(f"generate_fashionpedia: extras must be a list of {list(EXTRAS)} or None, got {extras!r}")
        extras = sorted(set(extras), key=EXTRAS.index)
    if len(size) != 2:
        raise ValueError(f"generate_fashionpedia: size must be [width, height], got {size!r}")
    size = (_check_int("size[0]", size[0], 32), _check_int("size[1]", size[1], 32))
    out = Path(out_dir)
    _prepare(out)

    total = train + val + test_unlabelled
    # 12-digit names from one pool, so val and test images never collide in test/
    numbers = stream_rng(seed, _STREAM_FASHIONPEDIA_NAMES).choice(max(10 ** 6, 10 * total), total, replace=False)
    names = {"train": sorted(numbers[:train]), "val": sorted(numbers[train:train + val]),
             "test": sorted(numbers[train + val:])}
    blobs: dict[str, dict[str, bytes]] = {"train": {}, "test": {}}
    docs, counts = {}, {"encodings": {"polygon": 0, "compressed_rle": 0, "uncompressed_rle": 0}, "crowd": 0,
                        "crowd_only_images": crowd_only_images, "part_annotations": 0}
    for official, folder in (("train", "train"), ("val", "test"), ("test", "test")):
        images, anns = [], []
        (out / "truth" / folder).mkdir(parents=True, exist_ok=True)
        for image_id, number in enumerate(names[official]):  # ids restart at 0 in each file
            file_name = f"{int(number):012d}.jpg"
            pic = fashionpedia_image(seed, official, image_id, size, clutter, min_area, extras, close_up)
            blobs[folder][file_name] = _jpeg_bytes(pic.img)
            _png_write(pic.foreground, out / "truth" / folder / file_name.replace(".jpg", ".png"))
            rng = stream_rng(seed, _STREAM_FASHIONPEDIA, _OFFICIAL[official], image_id, 2)
            H, W = pic.foreground.shape
            images.append(_image_entry(image_id, file_name, W, H, rng))
            if official != "test":
                crowd_only = official == "train" and image_id < crowd_only_images
                anns += _annotations(pic, image_id, len(anns), rng, crowd_only, min_area)
        docs[official] = (images, anns)
        for a in anns:
            seg = a["segmentation"]
            kind = "polygon" if isinstance(seg, list) else "uncompressed_rle" if isinstance(seg["counts"], list) \
                else "compressed_rle"
            counts["encodings"][kind] += 1
            counts["crowd"] += a["iscrowd"]
            counts["part_annotations"] += a["category_id"] >= GARMENTS
    for official in ("train", "val"):
        (out / f"instances_attributes_{official}2020.json").write_text(json.dumps(_document(*docs[official])),
                                                                      encoding="utf-8")
    test_doc = {"info": dict(_INFO), "images": docs["test"][0], "licenses": [dict(x) for x in _LICENSES],
                "categories": [dict(c) for c in FASHIONPEDIA_CATEGORIES]}
    (out / "info_test2020.json").write_text(json.dumps(test_doc), encoding="utf-8")
    _write_zip(out / "train2020.zip", "train", blobs["train"])
    _write_zip(out / "val_test2020.zip", "test", blobs["test"])
    counts |= {"train_images": train, "val_images": val, "test_images": test_unlabelled,
               "annotations": {k: len(docs[k][1]) for k in ("train", "val")}}
    args = {"seed": seed, "train": train, "val": val, "test_unlabelled": test_unlabelled, "size": list(size),
            "clutter": clutter, "crowd_only_images": crowd_only_images, "min_area": min_area,
            "extras": extras, "close_up": close_up, "jpeg_quality": JPEG_QUALITY}
    info = {"generator": "fashion_rembg.demo.fashionpedia", "format_version": 1, "args": args, "counts": counts}
    (out / "demo_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return counts
