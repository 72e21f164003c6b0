"""ModaNet: COCO-format annotations + PaperDoll `photos.lmdb` → image store + class maps.

The official val JSON has no annotations (withheld for the challenge), so the labelled train JSON
is split deterministically into train/val/test; the split is recorded in the manifest. Images are
taken from the LMDB by id (key = decimal id, value = the JPEG bytes) and written unchanged as
`%07d.jpg` (`extract_images`), after which the 40 GB LMDB is no longer needed; prepare decodes them
in worker processes (it also reads the LMDB directly).
"""
from __future__ import annotations

import functools
import json
import logging
import os
import shutil
from pathlib import Path

from ..errors import DataError
from .archives import find_dir, path_inside
from .coco import (
    ClassMapping,
    FolderReader,
    LmdbReader,
    checked_images,
    compact_annotations,
    load_coco,
    rasterise,
    segmentation_job,
    split_ids,
    write_segmentation_store,
)
from .instances import InstanceStoreWriter, photo_instances

log = logging.getLogger(__name__)

CATEGORIES = (
    "bag", "belt", "boots", "footwear", "outer", "dress", "sunglasses",
    "pants", "top", "shorts", "skirt", "headwear", "scarf/tie",
)
CLASS_OF = ClassMapping({cat: cat for cat in range(1, len(CATEGORIES) + 1)}, known=())  # class index = category id
PAPERDOLL_URL = "http://vision.is.tohoku.ac.jp/chictopia2/photos.lmdb.tar"
PAPERDOLL_MD5 = "a404789687fc3906d7d843942c802f53"
IMAGES_MARKER = "extracted.json"

__all__ = ["CATEGORIES", "load_annotations", "rasterise", "split_ids", "find_lmdb", "extract_images", "prepare_modanet"]


def load_annotations(path: Path) -> dict:
    coco = load_coco(
        path, "ModaNet",
        missing_hint="Place modanet2018_instances_train.json there (from https://github.com/eBay/modanet, "
                     "fetched with Git LFS; md5 96478657d20e322e9d3282c6d73c0c4c).",
        empty_hint="This is probably modanet2018_instances_val.json, whose labels were withheld for the "
                   "challenge: point datasets.modanet.annotations at modanet2018_instances_train.json.",
    )
    names = {c.get("id"): c.get("name") for c in coco["categories"]}
    expected = dict(enumerate(CATEGORIES, start=1))
    if names != expected:
        raise DataError(f"ModaNet: {path} categories {names} differ from the 13 ModaNet categories {expected}")
    return coco


def find_lmdb(lmdb_dir: Path) -> Path:
    """The photos.lmdb folder: `lmdb_dir` itself or a folder below it (an extracted photos.lmdb.tar)."""
    lmdb_dir = Path(lmdb_dir)
    if not lmdb_dir.is_dir():
        raise DataError(
            f"ModaNet: LMDB {lmdb_dir}/data.mdb not found. Download PaperDoll's photos.lmdb.tar "
            f"({PAPERDOLL_URL}, md5 {PAPERDOLL_MD5}) and extract it so that {lmdb_dir}/data.mdb exists."
        )
    try:
        return find_dir(lmdb_dir, lambda d: (d / "data.mdb").is_file(), "photos.lmdb folder (data.mdb)")
    except DataError as err:
        raise DataError(f"ModaNet: {err}. Extract PaperDoll's photos.lmdb.tar ({PAPERDOLL_URL}) there.") from None


def extract_images(annotations: Path, lmdb_dir: Path, target: Path) -> dict:
    """Write each annotated ModaNet image from the LMDB to `<target>/<file_name>` with its bytes
    unchanged (no re-encoding), so the ~40 GB LMDB may be deleted afterwards. Ids missing from the
    LMDB are listed in `<target>/extracted.json` (and become quarantine rows in prepare)."""
    coco = load_annotations(annotations)
    reader = LmdbReader(str(find_lmdb(lmdb_dir)))
    target = Path(target)
    staging = target.with_name(f".{target.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    annotated = set(compact_annotations(coco))
    written, missing, refused, size = 0, [], {}, 0
    try:
        for im in checked_images(coco, []):  # prepare quarantines the others
            if im["id"] not in annotated:
                continue
            try:  # written where prepare will look for it, and never outside the target
                dest = path_inside(staging, im.get("file_name"), "file_name")
            except DataError as err:
                refused[int(im["id"])] = str(err)  # prepare quarantines it with the same reason
                continue
            payload = reader.read(int(im["id"]))
            if payload is None:
                missing.append(int(im["id"]))
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(payload)
            written, size = written + 1, size + len(payload)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        reader.close()
    summary = {"annotations": str(annotations), "lmdb": str(lmdb_dir), "images": written, "bytes": size,
               "missing_ids": missing, "refused_file_names": refused}
    (staging / IMAGES_MARKER).write_text(json.dumps(summary, indent=1) + "\n")
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)
    log.info("ModaNet images: %d written, %d ids missing from the LMDB", written, len(missing))
    return summary


class _Context:
    def __init__(self, source: str, store_size: tuple[int, int], fit: str = "cover", instances: bool = False):
        self.lmdb = (Path(source) / "data.mdb").is_file()
        self.reader = LmdbReader(source) if self.lmdb else FolderReader(source, "")
        self.store_size, self.fit = store_size, fit
        self.photo_instances = photo_instances if instances else None

    def close(self) -> None:
        self.reader.close()


def _work(ctx: _Context, item: dict):
    image_id = item["image_id"]
    return segmentation_job(lambda: ctx.reader.read(image_id if ctx.lmdb else item["source"]),
                            f"id {image_id} missing from {item['missing_from']}", item, str(image_id), CLASS_OF,
                            ctx.store_size, ctx.fit, ctx.photo_instances)


def image_source(images: Path) -> tuple[Path, str]:
    """(folder to read, what a missing id is missing from): photos.lmdb, or extracted %07d.jpg files."""
    images = Path(images)
    marker = images / IMAGES_MARKER
    if marker.is_file():
        lmdb_dir = json.loads(marker.read_text()).get("lmdb", "the LMDB")
        return images, f"{lmdb_dir} (not extracted into {images})"
    lmdb_path = find_lmdb(images)
    return lmdb_path, str(lmdb_path)


def prepare_modanet(annotations: Path, images: Path, out_dir: Path, store_size: tuple[int, int],
                    val_fraction: float, test_fraction: float, seed: int, workers: int = 1, fit: str = "cover",
                    instances: bool = False) -> dict:
    """Write manifest.tsv, quarantine.tsv, classes.json, images.npy and classmaps.npy into out_dir
    (with ``instances``, the instance store too: ``datasets.instances``).

    `images`: the photos.lmdb folder (or a folder above it), or the folder made by `extract_images`.
    """
    coco = load_annotations(annotations)
    source, missing_from = image_source(images)
    by_image = compact_annotations(coco)
    quarantine: list[dict] = []
    images = checked_images(coco, quarantine)
    del coco  # the compact index is all that is needed from here on
    quarantine += [{"source": im["file_name"], "reason": "no annotations in the labelled JSON"}
                   for im in images if int(im["id"]) not in by_image]
    labelled = [im for im in images if int(im["id"]) in by_image]
    splits = split_ids([int(im["id"]) for im in labelled], val_fraction, test_fraction, seed)
    items = [{"image_id": int(im["id"]), "source": im["file_name"], "width": int(im["width"]),
              "height": int(im["height"]), "annotations": by_image[int(im["id"])], "split": splits[int(im["id"])],
              "missing_from": missing_from}
             for im in labelled]
    classes = ["background", *CATEGORIES]
    return write_segmentation_store(
        out_dir, items, _work, functools.partial(_Context, str(source), tuple(store_size), fit, instances),
        classes, quarantine, store_size, workers, "ModaNet",
        instance_writer=InstanceStoreWriter(out_dir, store_size, classes) if instances else None)
