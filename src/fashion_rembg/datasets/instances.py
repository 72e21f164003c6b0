"""Instance-segmentation targets straight from COCO annotations (ModaNet, Fashionpedia, own COCO sets).

Each annotation (polygons, or RLE compressed or not, checked by `coco.annotation_rle`) is decoded
at the photo's size and brought to the store size by the *same* `fit_image` call (NEAREST) that
fits the photo and the semantic class maps, so image, class map and instance masks stay aligned
pixel for pixel (EXIF rotation included). Crowd regions keep their COCO `iscrowd` flag: evaluation
ignores them the COCO way, training leaves them out (as torchvision's references do).

Store encoding, one file pair per store (`instances.jsonl` + `instances.index.npy`): one JSON line
per store row (same order as `images.npy`) holding its instances as `[label, iscrowd, [x, y, w, h],
"<compressed RLE at store size>"]`, and the byte offset of every line in the index, so the writer
holds one image at a time and the reader seeks straight to a row. Instances that vanish at store
size (cropped out by `cover`, thinner than a pixel after downscaling, degenerate polygons) are
dropped and counted by reason in `instances.meta.json`.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from ..atomic import atomic_file, explain_write_errors
from ..errors import DataError
from .coco import Photo, annotation_rle, open_photo
from .imaging import DECODE_ERRORS, transpose_like
from .store import fit_image, to_rgb

__all__ = [
    "INDEX_FILE",
    "INSTANCES_FILE",
    "META_FILE",
    "InstanceStore",
    "InstanceStoreWriter",
    "fit_instances",
    "instance_rows",
    "photo_instances",
]

INSTANCES_FILE = "instances.jsonl"
INDEX_FILE = "instances.index.npy"
META_FILE = "instances.meta.json"

# Drop reasons (counted, never silent).
NO_SEGMENTATION = "annotation without polygons"
DEGENERATE = "only degenerate polygons"
VANISHED = "empty at store size (cropped out or thinner than a pixel)"


def _rle_str(rle: dict) -> str:
    counts = rle["counts"]
    return counts.decode("ascii") if isinstance(counts, bytes) else counts


def fit_instances(annotations: list[dict], height: int, width: int, class_of, store_size: tuple[int, int],
                  fit: str = "cover", exif: int = 1) -> tuple[list[list], Counter]:
    """Instances of one image at store size and the drop counts by reason.

    `height`, `width`: the frame the annotations refer to; `exif`: the EXIF orientation to apply
    first (annotations drawn on stored pixels of a rotated photo). Each instance is `[label,
    iscrowd, [x, y, w, h], rle]` with `label = class_of(category_id)` (≥ 1); a known category the
    class list leaves out (e.g. garment parts) is skipped and counted as `left out`; an unknown one
    raises DataError, like the semantic store.
    """
    instances, drops = [], Counter()
    for ann in sorted(annotations, key=lambda a: a.get("id") or 0):
        cat = ann.get("category_id")
        label = class_of(cat)
        if label is None and getattr(class_of, "known", lambda c: False)(cat):
            drops["left out (category not in the class list)"] += 1
            continue
        if label is None or not 0 < label < 256:
            raise DataError(f"annotation {ann.get('id')}: unknown category_id {cat!r} (not one of the dataset's "
                            "categories)")
        notes: list[str] = []
        try:
            rle = annotation_rle(ann, height, width, notes)
        except (TypeError, ValueError) as err:
            raise DataError(f"annotation {ann.get('id')}: malformed segmentation ({err})") from None
        if rle is None:
            drops[NO_SEGMENTATION if NO_SEGMENTATION in notes else DEGENERATE] += 1
            continue
        mask = Image.fromarray(mask_utils.decode(rle).astype(np.uint8) * 255)
        if exif != 1:
            mask = transpose_like(mask, exif)
        fitted = np.asarray(fit_image(mask, store_size, Image.Resampling.NEAREST, fit)) > 127
        if not fitted.any():
            drops[VANISHED] += 1
            continue
        small = mask_utils.encode(np.asfortranarray(fitted.astype(np.uint8)))
        bbox = [float(v) for v in mask_utils.toBbox(small)]
        iscrowd = int(bool(ann.get("iscrowd", 0)))
        instances.append([int(label), iscrowd, bbox, _rle_str(small)])
    return instances, drops


def photo_instances(photo: Photo, width: int, height: int, annotations: list[dict], class_of,
                    store_size: tuple[int, int], fit: str = "cover") -> tuple[list[list], Counter]:
    """(instances, drop counts) of an already decoded photo (`coco.open_photo`, which says whether the
    annotations refer to the stored pixels or the EXIF-rotated view); DataError if none is usable.
    An image with no instance left (not even a crowd region) is unusable; a crowd-only one is kept
    (evaluation needs it), `InstanceStore` flags it."""
    instances, drops = fit_instances(annotations, height, width, class_of, store_size, fit, photo.annotation_exif)
    if not instances:
        why = "; ".join(f"{n} {r}" for r, n in sorted(drops.items())) or "no annotations"
        raise DataError(f"no usable instance ({why})")
    return instances, drops


def instance_rows(payload: bytes | Path, width: int, height: int, annotations: list[dict], class_of,
                  store_size: tuple[int, int], fit: str = "cover") -> tuple[np.ndarray, list[list], Counter, str]:
    """(image row, instances, drop counts, note) of one photo on its own; DataError if unusable.
    Prepare jobs decode each photo once for both stores (`coco.segmentation_job`)."""
    photo = open_photo(payload, width, height)
    instances, drops = photo_instances(photo, width, height, annotations, class_of, store_size, fit)
    try:
        rgb, note = to_rgb(photo.image)
    except DECODE_ERRORS as err:
        raise DataError(f"unusable image ({type(err).__name__}: {err})") from None
    image = np.asarray(fit_image(rgb, store_size, fit=fit), dtype=np.uint8)
    dropped = [f"{n} instance(s) {r}" for r, n in sorted(drops.items())]
    return image, instances, drops, ";".join(x for x in [note, *dropped] if x)


class InstanceStoreWriter:
    """Appends one JSON line per store row; `finish` writes the offset index and the meta file.

    Memory: one image's instances plus 8 bytes per row (the offsets)."""

    def __init__(self, out_dir: Path, store_size: tuple[int, int], classes: list[str]):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.store_size = (int(store_size[0]), int(store_size[1]))
        self.classes = list(classes)
        self.partial = self.out_dir / f".{INSTANCES_FILE}.partial"
        self.fh = open(self.partial, "wb")  # noqa: SIM115 - open across put() calls, closed by finish/abort
        self.offsets = [0]
        self.counts = Counter()
        self.dropped = Counter()

    def put(self, image_id: str, instances: list[list], drops: Counter | None = None) -> int:
        """Append the next store row's instances; returns its row index."""
        for label, _iscrowd, bbox, _rle in instances:
            if not 0 < int(label) < len(self.classes):
                raise ValueError(f"instance label {label} outside 1…{len(self.classes) - 1}")
            if bbox[2] <= 0 or bbox[3] <= 0:
                raise ValueError(f"image {image_id}: instance with an empty box {bbox}")
        crowd_only = bool(instances) and all(inst[1] for inst in instances)
        line = json.dumps({"id": str(image_id), "crowd_only": crowd_only, "instances": instances},
                          separators=(",", ":")).encode() + b"\n"
        with explain_write_errors(self.out_dir / INSTANCES_FILE):
            self.fh.write(line)
        self.offsets.append(self.offsets[-1] + len(line))
        self.counts["instances"] += sum(1 for i in instances if not i[1])
        self.counts["crowd"] += sum(1 for i in instances if i[1])
        self.counts["crowd_only_images"] += crowd_only
        self.dropped.update(drops or {})
        return len(self.offsets) - 2

    def finish(self) -> dict:
        self.fh.close()
        os.replace(self.partial, self.out_dir / INSTANCES_FILE)
        with atomic_file(self.out_dir / INDEX_FILE) as tmp, open(tmp, "wb") as fh:
            np.save(fh, np.asarray(self.offsets, dtype=np.int64))
        meta = {"store_size": list(self.store_size), "classes": self.classes, "images": len(self.offsets) - 1,
                "instances": self.counts["instances"], "crowd": self.counts["crowd"],
                "crowd_only_images": self.counts["crowd_only_images"], "dropped": dict(sorted(self.dropped.items()))}
        with atomic_file(self.out_dir / META_FILE) as tmp:
            tmp.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        return meta

    def abort(self) -> None:
        self.fh.close()
        self.partial.unlink(missing_ok=True)


class InstanceStore:
    """Reader: `record(row)`, and `target(row)` in torchvision Mask R-CNN form."""

    def __init__(self, store_dir: Path):
        self.dir = Path(store_dir)
        for name in (INSTANCES_FILE, INDEX_FILE, META_FILE):
            if not (self.dir / name).is_file():
                raise DataError(f"{self.dir / name} not found: the instance store is incomplete; rerun prepare")
        self.meta = json.loads((self.dir / META_FILE).read_text())
        self.offsets = np.load(self.dir / INDEX_FILE, allow_pickle=False)
        self.height, self.width = self.meta["store_size"]
        self.classes = self.meta["classes"]
        size = (self.dir / INSTANCES_FILE).stat().st_size
        if len(self.offsets) != self.meta["images"] + 1 or int(self.offsets[-1]) != size:
            raise DataError(f"{self.dir}: {INDEX_FILE} does not match {INSTANCES_FILE}; rerun prepare")
        self._fh = None

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def record(self, row: int) -> dict:
        if not 0 <= row < len(self):
            raise IndexError(f"instance store {self.dir}: row {row} outside 0…{len(self) - 1}")
        if self._fh is None:
            self._fh = open(self.dir / INSTANCES_FILE, "rb")  # noqa: SIM115 - kept for seeks, closed by close()
        self._fh.seek(int(self.offsets[row]))
        return json.loads(self._fh.read(int(self.offsets[row + 1] - self.offsets[row])))

    def rle(self, text: str) -> dict:
        return {"size": [self.height, self.width], "counts": text.encode("ascii")}

    def target(self, row: int, include_crowd: bool = False) -> dict:
        """`boxes` (N, 4) float32 XYXY, `labels` (N,) int64 ≥ 1, `masks` (N, H, W) uint8, `iscrowd` (N,)
        int64; crowd regions only with `include_crowd` (torchvision's losses have no ignore regions)."""
        import torch

        kept = [i for i in self.record(row)["instances"] if include_crowd or not i[1]]
        boxes = np.asarray([[x, y, x + w, y + h] for _, _, (x, y, w, h), _ in kept], np.float32).reshape(-1, 4)
        masks = np.zeros((len(kept), self.height, self.width), np.uint8)
        for k, inst in enumerate(kept):
            masks[k] = mask_utils.decode(self.rle(inst[3]))
        return {"boxes": torch.from_numpy(boxes), "labels": torch.tensor([i[0] for i in kept], dtype=torch.int64),
                "masks": torch.from_numpy(masks), "iscrowd": torch.tensor([i[1] for i in kept], dtype=torch.int64)}

    def crowd_only(self, row: int) -> bool:
        return bool(self.record(row)["crowd_only"])

    def coco_ground_truth(self, rows) -> dict:
        """A COCO instances dict of `rows` (image id = store row), crowd regions included as such."""
        images, annotations = [], []
        for row in (int(r) for r in rows):
            record = self.record(row)
            images.append({"id": row, "width": self.width, "height": self.height, "file_name": record["id"]})
            for label, iscrowd, bbox, text in record["instances"]:
                annotations.append({"id": len(annotations) + 1, "image_id": row, "category_id": int(label),
                                    "iscrowd": int(iscrowd), "bbox": bbox,
                                    "area": float(mask_utils.area(self.rle(text))),
                                    "segmentation": {"size": [self.height, self.width], "counts": text}})
        categories = [{"id": k, "name": name} for k, name in enumerate(self.classes) if k > 0]
        return {"images": images, "annotations": annotations, "categories": categories}

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
