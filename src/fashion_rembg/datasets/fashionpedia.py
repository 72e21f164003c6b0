"""Fashionpedia (Jia et al., ECCV 2020): the segmentation dataset of the paper.

Inputs are the official files: `instances_attributes_{train,val}2020.json` and the image zips
`train2020.zip` (folder `train/`) and `val_test2020.zip`, whose `test/` folder holds the val images
*and* the unlabelled test images (val images are picked by the val JSON's file names). Zips are read
directly, without extraction; an already extracted folder works too. Segmentations mix polygons
and RLE (compressed or uncompressed). Image and annotation ids restart in each JSON, so manifest
ids carry the official split (`train-<id>`, `val-<id>`).

Splits: the official val set has labels and becomes our **test** split; the official train set is
split deterministically into **train/val** (`split.val_fraction`, `split.seed`).

Classes: `garments` = the 27 main apparel categories (ids 0–26; garment parts such as sleeves and
collars are not drawn, so the garment's own class shows through), `all` = all 46 categories.
Class index = category id + 1 (0 = background).
"""
from __future__ import annotations

import functools
import logging
from pathlib import Path

from ..errors import DataError
from .coco import (
    ClassMapping,
    checked_images,
    compact_annotations,
    image_reader,
    load_coco,
    segmentation_job,
    split_ids,
    write_segmentation_store,
)
from .instances import InstanceStoreWriter, photo_instances

log = logging.getLogger(__name__)

CATEGORIES = (
    "shirt, blouse", "top, t-shirt, sweatshirt", "sweater", "cardigan", "jacket", "vest", "pants", "shorts",
    "skirt", "coat", "dress", "jumpsuit", "cape", "glasses", "hat", "headband, head covering, hair accessory",
    "tie", "glove", "watch", "belt", "leg warmer", "tights, stockings", "sock", "shoe", "bag, wallet", "scarf",
    "umbrella",
    "hood", "collar", "lapel", "epaulette", "sleeve", "pocket", "neckline", "buckle", "zipper", "applique",
    "bead", "bow", "flower", "fringe", "ribbon", "rivet", "ruffle", "sequin", "tassel",
)
GARMENTS = 27  # ids 0–26 are main apparel, 27–45 garment parts
CLASS_SETS = ("garments", "all")
OFFICIAL = {"train": ("train_annotations", "train_images", "train"),
            "val": ("val_annotations", "val_images", "test")}  # json key, images key, zip folder

__all__ = ["CATEGORIES", "GARMENTS", "class_names", "class_mapping", "load_annotations", "prepare_fashionpedia"]


def class_names(classes: str) -> list[str]:
    if classes not in CLASS_SETS:
        raise DataError(f"datasets.fashionpedia.classes must be one of {CLASS_SETS}, not {classes!r}")
    return ["background", *CATEGORIES[: GARMENTS if classes == "garments" else len(CATEGORIES)]]


def class_mapping(classes: str) -> ClassMapping:
    drawn = GARMENTS if classes == "garments" else len(CATEGORIES)
    return ClassMapping({cat: cat + 1 for cat in range(drawn)}, known=range(len(CATEGORIES)))


def load_annotations(path: Path, official: str) -> dict:
    name = f"instances_attributes_{official}2020.json"
    coco = load_coco(
        path, f"Fashionpedia {official}",
        missing_hint=f"Place {name} there (https://github.com/cvdfoundation/fashionpedia).",
        empty_hint=f"Expected {name}; info_test2020.json (test images, no labels) cannot be used for training.",
    )
    names = {c.get("id"): c.get("name") for c in coco["categories"]}
    expected = dict(enumerate(CATEGORIES))
    if names != expected:
        hint = (" This looks like the pre-release sample.json (48 categories, shifted ids): use the official "
                "2020 annotation files." if len(names) == 48 else "")
        raise DataError(f"Fashionpedia: {path} has {len(names)} categories that differ from the 46 official "
                        f"ones (ids 0–45, 'shirt, blouse' … 'tassel').{hint}")
    return coco


class _Context:
    def __init__(self, sources: dict[str, tuple[str, str]], store_size: tuple[int, int], classes: str,
                 fit: str = "cover", instances: bool = False):
        self.readers = {split: image_reader(path, folder) for split, (path, folder) in sources.items()}
        self.store_size, self.class_of, self.fit = store_size, class_mapping(classes), fit
        self.photo_instances = photo_instances if instances else None

    def close(self) -> None:
        for reader in self.readers.values():
            reader.close()


def _work(ctx: _Context, item: dict):
    reader = ctx.readers[item["official"]]
    return segmentation_job(lambda: reader.read(item["file_name"]),
                            f"{item['file_name']} not found in {reader.path} (folder {reader.folder}/)",
                            item, item["id"], ctx.class_of, ctx.store_size, ctx.fit, ctx.photo_instances)


def prepare_fashionpedia(paths: dict[str, str], out_dir: Path, store_size: tuple[int, int], classes: str = "garments",
                         val_fraction: float = 0.1, seed: int = 0, workers: int = 1, fit: str = "cover",
                         instances: bool = False) -> dict:
    """`paths`: train_annotations, val_annotations, train_images, val_images (zip or folder).

    Writes manifest.tsv, quarantine.tsv, classes.json, images.npy and classmaps.npy into out_dir
    (with ``instances``, the instance store too: ``datasets.instances``).
    """
    names = class_names(classes)
    mapping = class_mapping(classes)
    items, quarantine, sources = [], [], {}
    for official, (json_key, images_key, folder) in OFFICIAL.items():
        coco = load_annotations(paths[json_key], official)
        by_image = compact_annotations(coco)
        images = checked_images(coco, quarantine, prefix=f"{folder}/")
        del coco
        sources[official] = (str(paths[images_key]), folder)
        labelled = []
        for im in images:
            anns = by_image.get(int(im["id"]), [])
            source = f"{folder}/{im['file_name']}"
            cats = [a.get("category_id") for a in anns]
            if not any(mapping(c) or not mapping.known(c) for c in cats):  # unknown ids fail loudly later
                reason = "no annotations" if not anns else f"no {classes} annotation (only garment parts)"
                quarantine.append({"source": source, "reason": f"{reason} in {Path(paths[json_key]).name}"})
                continue
            labelled.append((im, anns, source))
        if official == "train":
            split = split_ids([int(im["id"]) for im, _, _ in labelled], val_fraction, 0.0, seed)
        else:
            split = {int(im["id"]): "test" for im, _, _ in labelled}
        items += [{"official": official, "id": f"{official}-{int(im['id'])}", "file_name": im["file_name"],
                   "source": source, "width": int(im["width"]), "height": int(im["height"]),
                   "annotations": anns, "split": split[int(im["id"])]}
                  for im, anns, source in labelled]
    return write_segmentation_store(
        out_dir, items, _work, functools.partial(_Context, sources, tuple(store_size), classes, fit, instances),
        names, quarantine, store_size, workers, "Fashionpedia", required_splits=("train", "test"),
        instance_writer=InstanceStoreWriter(out_dir, store_size, names) if instances else None)
