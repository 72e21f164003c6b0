"""Your own COCO instance annotations → image store + semantic class maps.

One COCO JSON (polygons and/or RLE) and its images in a folder or a zip (`file_name` relative to
it). `categories` picks a subset by name or id (default: all, in id order); class index = position
in that list + 1 (0 = background); instances of the other categories are not drawn. The labelled
images are split with a seeded train/val/test split (`split`). Reuses the ModaNet/Fashionpedia
machinery of `coco.py`: checks, rasterising, EXIF alignment, readers, bounded-memory store writer.
"""
from __future__ import annotations

import functools
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

MAX_CLASSES = 255  # class maps are uint8 with 0 = background


def load_annotations(name: str, path: Path) -> dict:
    return load_coco(path, f"datasets.{name}.annotations",
                     missing_hint="Expected a COCO instances JSON with images, annotations and categories.",
                     empty_hint="Segmentation needs labelled instances: use an instances file with annotations "
                                "(not an image-info or test file).")


def choose_categories(name: str, coco: dict, wanted: list | None) -> list[tuple[int, str]]:
    """(id, name) of the drawn categories, in class order; DataError naming the unknown ones."""
    known = [(c.get("id"), str(c.get("name"))) for c in coco["categories"] if isinstance(c, dict)]
    bad = [cid for cid, _ in known if isinstance(cid, bool) or not isinstance(cid, int)]
    if bad or not known:
        raise DataError(f"datasets.{name}.annotations: categories need integer ids and names, got ids {bad or 'none'}")
    if wanted is None:
        chosen = sorted(known)
    else:
        by_name, by_id = {n: (i, n) for i, n in known}, {i: (i, n) for i, n in known}
        unknown = [w for w in wanted if (by_name if isinstance(w, str) else by_id).get(w) is None]
        if unknown:
            raise DataError(f"datasets.{name}.categories: {unknown} not in the annotation file's categories "
                            f"({', '.join(f'{i}: {n}' for i, n in sorted(known)[:30])})")
        chosen = list(dict.fromkeys((by_name if isinstance(w, str) else by_id)[w] for w in wanted))
    if len(chosen) > MAX_CLASSES:
        raise DataError(f"datasets.{name}: {len(chosen)} categories, at most {MAX_CLASSES} fit a class map; "
                        f"pick a subset with datasets.{name}.categories")
    return chosen


class _Context:
    def __init__(self, images: str, store_size: tuple[int, int], class_of: ClassMapping, fit: str,
                 instances: bool = False):
        self.reader = image_reader(images, "")
        self.store_size, self.class_of, self.fit = store_size, class_of, fit
        self.photo_instances = photo_instances if instances else None

    def close(self) -> None:
        self.reader.close()


def _work(ctx: _Context, item: dict):
    return segmentation_job(lambda: ctx.reader.read(item["source"]), f"{item['source']} not found in {ctx.reader.path}",
                            item, item["id"], ctx.class_of, ctx.store_size, ctx.fit, ctx.photo_instances)


def prepare_coco(name: str, annotations: Path, images: Path, out_dir: Path, store_size: tuple[int, int],
                 split: dict, categories: list | None = None, workers: int = 1, fit: str = "cover",
                 instances: bool = False) -> dict:
    """Write manifest.tsv, quarantine.tsv, classes.json, images.npy and classmaps.npy into out_dir
    (with ``instances``, the instance store too: ``datasets.instances``)."""
    if not Path(images).exists():
        raise DataError(f"datasets.{name}.images: {images} not found (a folder or .zip of the annotated images)")
    coco = load_annotations(name, Path(annotations))
    chosen = choose_categories(name, coco, categories)
    mapping = ClassMapping({cid: k for k, (cid, _) in enumerate(chosen, start=1)},
                           known=[c.get("id") for c in coco["categories"] if isinstance(c, dict)])
    by_image = compact_annotations(coco)
    quarantine: list[dict] = []
    images_ok = checked_images(coco, quarantine)
    del coco
    labelled = []
    for im in images_ok:
        anns = by_image.get(im["id"], [])
        # unknown category ids stay in: rasterising refuses that image with the reason
        if not any(mapping(a.get("category_id")) or not mapping.known(a.get("category_id")) for a in anns):
            reason = "no annotations" if not anns else "no annotation of the chosen categories"
            quarantine.append({"source": str(im.get("file_name")), "reason": f"{reason} in {Path(annotations).name}"})
            continue
        labelled.append((im, anns))
    splits = split_ids([im["id"] for im, _ in labelled], split["val_fraction"], split["test_fraction"], split["seed"])
    items = [{"id": str(im["id"]), "source": str(im.get("file_name")), "width": im["width"], "height": im["height"],
              "annotations": anns, "split": splits[im["id"]]} for im, anns in labelled]
    classes = ["background", *(n for _, n in chosen)]
    return write_segmentation_store(
        out_dir, items, _work, functools.partial(_Context, str(images), tuple(store_size), mapping, fit, instances),
        classes, quarantine, store_size, workers, name, required_splits=("train", "val", "test"),
        instance_writer=InstanceStoreWriter(out_dir, store_size, classes) if instances else None)
