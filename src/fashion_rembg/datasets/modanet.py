"""ModaNet: COCO-format annotations + PaperDoll `photos.lmdb` → image store + class maps."""
from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from pycocotools import mask as mask_utils

from ..errors import DataError
from .store import MANIFEST_COLUMNS, StoreWriter, fit_image, to_rgb, write_json, write_tsv

log = logging.getLogger(__name__)

CATEGORIES = (
    "bag", "belt", "boots", "footwear", "outer", "dress", "sunglasses",
    "pants", "top", "shorts", "skirt", "headwear", "scarf/tie",
)
LFS_POINTER_PREFIX = b"version https://git-lfs.github.com/spec/v1"

__all__ = ["CATEGORIES", "load_annotations", "rasterise", "split_ids", "prepare_modanet"]


def load_annotations(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"ModaNet: {path} not found. Place modanet2018_instances_train.json there "
            "(from https://github.com/eBay/modanet, fetched with Git LFS)."
        )
    with open(path, "rb") as fh:
        head = fh.read(len(LFS_POINTER_PREFIX))
    if head == LFS_POINTER_PREFIX:
        raise DataError(
            f"ModaNet: {path} is a Git LFS pointer ({path.stat().st_size} bytes), not the annotations. "
            "Install git-lfs and run `git lfs pull` in the eBay/modanet clone, then copy the real file."
        )
    try:
        coco = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"ModaNet: {path} is not valid JSON ({err})") from None
    for key in ("images", "annotations", "categories"):
        if key not in coco:
            raise DataError(f"ModaNet: {path} lacks the COCO key {key!r}")
    names = {c["id"]: c["name"] for c in coco["categories"]}
    expected = dict(enumerate(CATEGORIES, start=1))
    if names != expected:
        raise DataError(f"ModaNet: {path} categories {names} differ from the 13 ModaNet categories {expected}")
    return coco


def rasterise(annotations: list[dict], height: int, width: int) -> np.ndarray:
    """Class-index map (0 = background). Larger instances are drawn first so that smaller,
    overlapping ones (belt on dress, bag on outer) stay visible, as in ModaNet's own renders."""
    classmap = np.zeros((height, width), dtype=np.uint8)
    for ann in sorted(annotations, key=lambda a: (-float(a.get("area", 0)), a.get("id", 0))):
        segm = ann.get("segmentation")
        if not segm:
            continue
        if isinstance(segm, list):
            polygons = [p for p in segm if len(p) >= 6 and len(p) % 2 == 0]
            if not polygons:
                continue
            rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
        elif isinstance(segm, dict) and isinstance(segm.get("counts"), list):
            rle = mask_utils.frPyObjects(segm, height, width)
        else:
            rle = segm
        classmap[mask_utils.decode(rle).astype(bool)] = int(ann["category_id"])
    return classmap


def split_ids(image_ids: list[int], val_fraction: float, test_fraction: float, seed: int) -> dict[int, str]:
    """Deterministic split of the labelled set (the official val JSON has no annotations)."""
    ordered = np.array(sorted(image_ids))
    order = np.random.default_rng(seed).permutation(len(ordered))
    n_val = int(round(len(ordered) * val_fraction))
    n_test = int(round(len(ordered) * test_fraction))
    split = {}
    for rank, pos in enumerate(order):
        split[int(ordered[pos])] = "val" if rank < n_val else "test" if rank < n_val + n_test else "train"
    return split


def prepare_modanet(annotations: Path, lmdb_dir: Path, out_dir: Path, store_size: tuple[int, int],
                    val_fraction: float, test_fraction: float, seed: int) -> dict:
    import lmdb

    out_dir = Path(out_dir)
    coco = load_annotations(annotations)
    if not (Path(lmdb_dir) / "data.mdb").is_file():
        raise DataError(
            f"ModaNet: LMDB {lmdb_dir}/data.mdb not found. Download PaperDoll's photos.lmdb.tar "
            "(http://vision.is.tohoku.ac.jp/chictopia2/photos.lmdb.tar, md5 a404789687fc3906d7d843942c802f53) "
            f"and extract it so that {lmdb_dir}/data.mdb exists."
        )
    by_image: dict[int, list[dict]] = {}
    for ann in coco["annotations"]:
        by_image.setdefault(int(ann["image_id"]), []).append(ann)
    images = sorted(coco["images"], key=lambda im: int(im["id"]))
    quarantine = [{"source": im["file_name"], "reason": "no annotations in the labelled JSON"}
                  for im in images if int(im["id"]) not in by_image]
    labelled = [im for im in images if int(im["id"]) in by_image]
    splits = split_ids([int(im["id"]) for im in labelled], val_fraction, test_fraction, seed)
    height, width = store_size
    writer = StoreWriter(out_dir, len(labelled), {"images": (height, width, 3), "classmaps": (height, width)})
    rows = []
    env = lmdb.open(str(lmdb_dir), readonly=True, lock=False, readahead=False, max_readers=16)
    try:
        with env.begin(buffers=False) as txn:
            for slot, im in enumerate(labelled):
                image_id = int(im["id"])
                payload = txn.get(str(image_id).encode("ascii"))
                if payload is None:
                    quarantine.append({"source": im["file_name"], "reason": f"id {image_id} missing from {lmdb_dir}"})
                    continue
                try:
                    with Image.open(io.BytesIO(payload)) as raw:
                        raw.load()
                        img, note = to_rgb(raw)
                except (OSError, ValueError, SyntaxError) as err:
                    quarantine.append({"source": im["file_name"], "reason": f"undecodable LMDB value ({err})"})
                    continue
                if img.size != (int(im["width"]), int(im["height"])):
                    quarantine.append({"source": im["file_name"],
                                       "reason": f"image is {img.size}, JSON says {(im['width'], im['height'])}"})
                    continue
                classmap = rasterise(by_image[image_id], img.height, img.width)
                writer.put(slot,
                           images=np.asarray(fit_image(img, store_size)),
                           classmaps=np.asarray(fit_image(Image.fromarray(classmap), store_size, Image.Resampling.NEAREST)))
                rows.append({"id": str(image_id), "source": im["file_name"], "split": splits[image_id],
                             "label": "", "label_idx": -1, "note": note})
    finally:
        env.close()
    count = writer.finish()
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS[1:])
    manifest.insert(0, "index", range(count))
    write_tsv(manifest, out_dir / "manifest.tsv")
    write_tsv(pd.DataFrame(quarantine, columns=["source", "reason"]), out_dir / "quarantine.tsv")
    write_json({"task": "segmentation", "classes": ["background", *CATEGORIES]}, out_dir / "classes.json")
    summary = {"images": count, "quarantined": len(quarantine),
               "splits": manifest["split"].value_counts().to_dict()}
    log.info("ModaNet prepared: %s", summary)
    if count == 0:
        raise DataError(f"ModaNet: no usable labelled image; see {out_dir / 'quarantine.tsv'}")
    return summary
