"""COCO-style segmentation datasets (ModaNet, Fashionpedia) → image store + semantic class maps.

Shared by both: loading and checking the annotation JSON, rasterising polygons *and* RLE
(compressed or uncompressed) with pycocotools, aligning class maps with EXIF-rotated photos,
deterministic splits, image readers (LMDB, zip, folder) and the parallel store writer.
"""
from __future__ import annotations

import json
import logging
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from ..errors import DataError
from .archives import path_inside, reject_non_data, relative_path, sniff
from .imaging import DECODE_ERRORS, open_raw, orientation, transpose_like
from .parallel import ordered_map
from .store import StoreWriter, fit_image, require_splits, split_counts, to_rgb, write_store_tables

log = logging.getLogger(__name__)

__all__ = ["load_coco", "checked_images", "compact_annotations", "rasterise", "rasterise_checked", "split_ids",
           "segmentation_rows", "Photo", "open_photo", "LmdbReader", "ZipReader", "FolderReader",
           "write_segmentation_store"]


# ----------------------------------------------------------------------------------------------
# Annotation files
# ----------------------------------------------------------------------------------------------
def load_coco(path: Path, what: str, missing_hint: str, empty_hint: str) -> dict:
    """Parsed COCO JSON, or a DataError that says what is wrong and what to do."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what}: {path} not found. {missing_hint}")
    kind = reject_non_data(path, what, sniff(path))
    if kind != "json":
        raise DataError(f"{what}: {path} is not a JSON file (its first bytes look like {kind}). {missing_hint}")
    try:
        with open(path, "rb") as fh:
            coco = json.load(fh)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{what}: {path} is not valid JSON ({err}); the download is probably truncated") from None
    if not isinstance(coco, dict):
        raise DataError(f"{what}: {path} is not a COCO annotation file (top level is not an object)")
    for key in ("images", "categories"):
        if key not in coco:
            raise DataError(f"{what}: {path} lacks the COCO key {key!r}")
    if not coco.get("annotations"):
        raise DataError(f"{what}: {path} has an empty annotation list. {empty_hint}")
    return coco


MAX_SIDE = 1 << 15  # pixels; larger "photos" are garbage sizes (and would allocate class maps of that size)


def checked_images(coco: dict, quarantine: list[dict], prefix: str = "") -> list[dict]:
    """The image entries with an integer id and a plausible integer size, sorted by id; the others
    (and repeated ids) become quarantine rows naming the image id and what is wrong."""
    good, seen = [], set()
    for im in coco["images"]:
        im = im if isinstance(im, dict) else {"file_name": repr(im)}
        fields = [im.get(k) for k in ("id", "width", "height")]
        source = f"{prefix}{im.get('file_name')}"
        if any(isinstance(v, bool) or not isinstance(v, int) for v in fields):
            reason = f"image {fields[0]!r}: id, width and height must be integers, got {fields}"
        elif not (0 < fields[1] <= MAX_SIDE and 0 < fields[2] <= MAX_SIDE):
            reason = f"image {fields[0]}: size {fields[1]}×{fields[2]} is not a plausible photo size"
        elif fields[0] in seen:
            reason = f"image {fields[0]}: id listed twice"
        else:
            seen.add(fields[0])
            good.append(im)
            continue
        quarantine.append({"source": source, "reason": reason})
    return sorted(good, key=lambda im: im["id"])


def _compact_polygon(poly):
    # Polygons as float arrays: a quarter of the memory of Python float lists, same values. One
    # that is not a flat list of numbers stays as it is and is refused when its image is drawn.
    if not isinstance(poly, list):
        return poly
    try:
        arr = np.asarray(poly, dtype=np.float64)
    except (TypeError, ValueError):
        return poly
    return arr if arr.ndim == 1 else poly


def _compact_segmentation(segm):
    return [_compact_polygon(p) for p in segm] if isinstance(segm, list) else segm


def compact_annotations(coco: dict) -> dict[int, list[dict]]:
    """image id → its annotations, keeping only what rasterising needs."""
    by_image: dict[int, list[dict]] = {}
    for ann in coco["annotations"]:
        image_id = ann.get("image_id") if isinstance(ann, dict) else None
        if isinstance(image_id, bool) or not isinstance(image_id, int):
            raise DataError(f"annotation {ann.get('id') if isinstance(ann, dict) else ann!r}: image_id {image_id!r} "
                            "is not an integer; is this a COCO instances file?")
        by_image.setdefault(image_id, []).append({
            "id": ann.get("id", 0), "category_id": ann.get("category_id"), "area": ann.get("area", 0),
            "iscrowd": ann.get("iscrowd", 0),
            "segmentation": _compact_segmentation(ann.get("segmentation")),
        })
    return by_image


# ----------------------------------------------------------------------------------------------
# Rasterising
# ----------------------------------------------------------------------------------------------
def _polygon_list(segm) -> list:
    return [p.tolist() if isinstance(p, np.ndarray) else p for p in segm]


# Polygon points may stray a little outside the image (rounding); beyond this many image sizes they
# are garbage, and rasterising them would allocate memory in proportion to the coordinates.
POLYGON_MARGIN = 1.0


def _checked_polygon(poly, ann_id, height: int, width: int) -> list[float]:
    """The polygon as floats, or DataError naming the annotation: numbers, finite, near the image."""
    try:
        values = np.asarray(poly, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"annotation {ann_id}: polygon with non-numeric coordinates") from None
    if not np.isfinite(values).all():
        raise DataError(f"annotation {ann_id}: polygon with NaN or infinite coordinates")
    xs, ys = values[0::2], values[1::2]
    if (np.abs(xs - width / 2) > width * (0.5 + POLYGON_MARGIN)).any() or \
            (np.abs(ys - height / 2) > height * (0.5 + POLYGON_MARGIN)).any():
        raise DataError(f"annotation {ann_id}: polygon coordinates far outside the {width}×{height} image "
                        f"(x {xs.min():g}…{xs.max():g}, y {ys.min():g}…{ys.max():g})")
    return values.tolist()


def annotation_rle(ann: dict, height: int, width: int, notes: list[str]):
    segm = ann.get("segmentation")
    if segm is None or (isinstance(segm, list) and len(segm) == 0):
        notes.append("annotation without polygons")
        return None
    if isinstance(segm, list):
        polygons = []
        for poly in _polygon_list(segm):
            if isinstance(poly, list) and len(poly) >= 6 and len(poly) % 2 == 0:
                polygons.append(_checked_polygon(poly, ann.get("id"), height, width))
            else:
                notes.append(f"annotation {ann.get('id')}: degenerate polygon skipped")
        if not polygons:
            return None
        return mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    if isinstance(segm, dict) and "counts" in segm and "size" in segm:
        size = [int(v) for v in segm["size"]]
        if size != [height, width]:
            raise DataError(
                f"annotation {ann.get('id')}: RLE size {size} differs from the image size {[height, width]}"
            )
        counts = segm["counts"]
        if isinstance(counts, (list, np.ndarray)):  # uncompressed RLE
            counts = [int(c) for c in counts]
            if any(c < 0 for c in counts) or sum(counts) != height * width:
                raise DataError(
                    f"annotation {ann.get('id')}: uncompressed RLE covers {sum(counts)} pixels, not {height}×{width}"
                )
            return mask_utils.frPyObjects({"size": size, "counts": counts}, height, width)
        if isinstance(counts, (str, bytes)):
            # pycocotools decodes a malformed string without complaint (into uninitialised memory).
            runs = compressed_rle_counts(counts)
            if runs is None or any(c < 0 for c in runs) or sum(runs) != height * width:
                raise DataError(
                    f"annotation {ann.get('id')}: compressed RLE is malformed or does not cover {height}×{width} pixels"
                )
            return {"size": size, "counts": counts}
    raise DataError(f"annotation {ann.get('id')}: unknown segmentation format ({type(segm).__name__})")


def compressed_rle_counts(counts: str | bytes) -> list[int] | None:
    """Run lengths of a COCO compressed RLE string (pycocotools' rleFrString), None if malformed."""
    data = counts.encode("ascii", "replace") if isinstance(counts, str) else bytes(counts)
    runs: list[int] = []
    p = 0
    while p < len(data):
        x, k, more = 0, 0, True
        while more:
            if p >= len(data) or not 48 <= data[p] < 48 + 64:
                return None
            c = data[p] - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p, k = p + 1, k + 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(runs) > 2:
            x += runs[-2]
        runs.append(x)
    return runs


def rasterise_checked(
    annotations: list[dict], height: int, width: int, class_of: Callable[[int], int | None] | None = None
) -> tuple[np.ndarray, list[str], int]:
    """(class map, notes, instances drawn). 0 = background. Larger instances are drawn first so that
    smaller, overlapping ones (belt on dress, sleeve on coat) stay visible. `class_of` maps a category
    id to a class index (None: not drawn); default: the category id itself. Raises DataError for an
    annotation that cannot be trusted (unknown category, malformed RLE)."""
    classmap = np.zeros((height, width), dtype=np.uint8)
    notes: list[str] = []
    drawn = 0
    for ann in sorted(annotations, key=lambda a: (-float(a.get("area") or 0), a.get("id") or 0)):
        cat = ann.get("category_id")
        if class_of is None:
            index = int(cat) if isinstance(cat, (int, np.integer)) else None
        else:
            index = class_of(cat)
            if index is None and getattr(class_of, "known", lambda c: False)(cat):
                continue  # a known category this class list leaves out (e.g. garment parts)
        if index is None or not 0 < index < 256:
            raise DataError(
                f"annotation {ann.get('id')}: unknown category_id {cat!r} (not one of the dataset's categories)"
            )
        try:
            rle = annotation_rle(ann, height, width, notes)
        except (TypeError, ValueError) as err:
            raise DataError(f"annotation {ann.get('id')}: malformed segmentation ({err})") from None
        if rle is None:
            continue
        classmap[mask_utils.decode(rle).astype(bool)] = index
        drawn += 1
    return classmap, notes, drawn


def rasterise(annotations: list[dict], height: int, width: int, class_of=None) -> np.ndarray:
    return rasterise_checked(annotations, height, width, class_of)[0]


class ClassMapping:
    """Category id → class index (1-based; 0 = background); ids outside `drawn` are known but skipped."""

    def __init__(self, index: dict[int, int], known: Iterable[int]):
        self.index, self.known_ids = dict(index), set(known)

    def __call__(self, cat):
        return self.index.get(cat) if isinstance(cat, (int, np.integer)) else None

    def known(self, cat) -> bool:
        return cat in self.known_ids


def split_ids(image_ids: list, val_fraction: float, test_fraction: float, seed: int) -> dict:
    """Deterministic split (independent of input order) into train/val/test by fraction."""
    ordered = sorted(image_ids)
    order = np.random.default_rng(seed).permutation(len(ordered))
    n_val = int(round(len(ordered) * val_fraction))
    n_test = int(round(len(ordered) * test_fraction))
    split = {}
    for rank, pos in enumerate(order):
        split[ordered[pos]] = "val" if rank < n_val else "test" if rank < n_val + n_test else "train"
    return split


# ----------------------------------------------------------------------------------------------
# One image + its annotations → store rows
# ----------------------------------------------------------------------------------------------
class Photo(NamedTuple):
    """A photo decoded once for every store written from it (class maps, instance masks)."""

    image: Image.Image  # decoded, EXIF orientation not yet applied
    orientation: int  # its EXIF orientation (1: upright)
    frame: str  # "stored": the annotations refer to the stored pixels; "shown": to the EXIF-rotated view

    @property
    def annotation_exif(self) -> int:
        """The EXIF transposition that brings masks drawn from the annotations upright with the photo."""
        return self.orientation if self.frame == "stored" else 1


def open_photo(payload: bytes | Path, width: int, height: int) -> Photo:
    """Decode the photo and tell which frame its annotations (the JSON's width × height) refer to:
    the stored pixels or the EXIF-rotated view; DataError if neither matches."""
    raw = open_raw(payload)
    o = orientation(raw)
    stored = raw.size
    shown = (stored[1], stored[0]) if o in (5, 6, 7, 8) else stored
    if stored == (width, height):
        return Photo(raw, o, "stored")
    if shown == (width, height):
        return Photo(raw, o, "shown")
    raise DataError(f"image is {stored[0]}×{stored[1]}, the annotations say {width}×{height}")


def segmentation_rows(
    payload: bytes | Path | Photo,
    width: int,
    height: int,
    annotations: list[dict],
    class_of,
    store_size: tuple[int, int],
    fit: str = "cover",
) -> tuple[dict[str, np.ndarray], str]:
    """Image and class-map rows aligned pixel for pixel, and a note; DataError if unusable.

    Annotations may refer to the stored pixels or to the EXIF-rotated view: the JSON's width ×
    height tells which (`open_photo`); the class map then follows the same rotation as the photo.
    `payload` may be an already decoded `Photo` (one decode for the semantic and instance stores).
    """
    photo = payload if isinstance(payload, Photo) else open_photo(payload, width, height)
    classmap, notes, drawn = rasterise_checked(annotations, height, width, class_of)
    if drawn == 0:
        raise DataError("no drawable annotation (" + ("; ".join(sorted(set(notes))) or "all categories left out") + ")")
    try:
        rgb, note = to_rgb(photo.image)
    except DECODE_ERRORS as err:
        raise DataError(f"unusable image ({type(err).__name__}: {err})") from None
    label = Image.fromarray(classmap)
    if photo.annotation_exif != 1:
        label = transpose_like(label, photo.annotation_exif)
    rows = {
        "images": np.asarray(fit_image(rgb, store_size, fit=fit), dtype=np.uint8),
        "classmaps": np.asarray(fit_image(label, store_size, Image.Resampling.NEAREST, fit), dtype=np.uint8),
    }
    skipped = sum(1 for n in notes if n == "annotation without polygons")
    extra = [f"{skipped} annotation(s) without polygons"] if skipped else []
    extra += sorted({n for n in notes if n != "annotation without polygons"})
    return rows, ";".join(x for x in [note, *extra] if x)


# ----------------------------------------------------------------------------------------------
# Image readers, opened once per worker process
# ----------------------------------------------------------------------------------------------
class LmdbReader:
    """PaperDoll photos.lmdb: key = decimal photo id, value = the encoded image bytes."""

    def __init__(self, path: str):
        import lmdb

        self.path = path
        self.env = lmdb.open(str(path), readonly=True, lock=False, readahead=False, max_readers=512)

    def read(self, key) -> bytes | None:
        with self.env.begin(buffers=False) as txn:
            return txn.get(str(key).encode("ascii"))

    def close(self) -> None:
        self.env.close()


# No photo in these datasets comes near this; a member or file declaring more is refused unread
# (a tiny zip can declare gigabytes).
MAX_IMAGE_BYTES = 256 << 20


def segmentation_job(
    read: Callable[[], bytes | Path | None],
    missing: str,
    item: dict,
    row_id: str,
    class_of,
    store_size: tuple[int, int],
    fit: str,
    photo_instances: Callable | None = None,
) -> tuple[dict | None, dict | str]:
    """One prepare job of a COCO-style store: ``(rows, manifest row)``, or ``(None, reason)`` to quarantine.
    ``read`` fetches the image bytes (None: absent, reported as ``missing``).

    ``photo_instances`` (``datasets.instances.photo_instances``): the instance store is written too,
    from the same decoded photo (one decode per image), so the image is quarantined when either path
    refuses it (the two stores' rows stay aligned); ``rows["instances"]`` then holds ``(instances,
    drop counts)``.
    """
    try:
        payload = read()
        if payload is None:
            return None, missing
        photo = open_photo(payload, item["width"], item["height"])
        rows, note = segmentation_rows(
            photo, item["width"], item["height"], item["annotations"], class_of, store_size, fit
        )
    except DataError as err:
        return None, str(err)
    if photo_instances is not None:
        try:
            instances, drops = photo_instances(photo, item["width"], item["height"], item["annotations"], class_of,
                                               store_size, fit)  # fmt: skip
        except DataError as err:
            return None, f"instance store: {err}"
        rows["instances"] = (instances, drops)
        dropped = [f"{n} instance(s) {r}" for r, n in sorted(drops.items())]
        note = ";".join(x for x in [note, *dropped] if x)
    return rows, {
        "id": row_id,
        "source": item["source"],
        "split": item["split"],
        "label": "",
        "label_idx": -1,
        "note": note,
    }


def _check_image_size(size: int, name: str) -> None:
    if size > MAX_IMAGE_BYTES:
        raise DataError(
            f"{name} is {size:,} bytes, more than the {MAX_IMAGE_BYTES:,} bytes allowed for one image; refused unread"
        )


class ZipReader:
    """Images read straight from a distributed zip (no extraction); `folder` is the member prefix."""

    def __init__(self, path: str, folder: str):
        self.path, self.folder = path, folder.strip("/")
        try:
            self.zf = zipfile.ZipFile(path)
        except zipfile.BadZipFile as err:
            raise DataError(f"{path} is not a readable zip ({err}); delete it and download it again") from None
        self.names = set(self.zf.namelist())

    def locate(self, file_name: str) -> str | None:
        file_name = relative_path(file_name, "file_name")  # the same rules as for a folder
        member = f"{self.folder}/{file_name}" if self.folder else file_name
        return member if member in self.names else None

    def read(self, file_name: str) -> bytes | None:
        member = self.locate(file_name)
        if member is None:
            return None
        _check_image_size(self.zf.getinfo(member).file_size, f"zip member {member}")
        try:
            return self.zf.read(member)  # at most file_size bytes: zipfile stops there
        except (zipfile.BadZipFile, EOFError, OSError) as err:  # CRC error, truncated member
            raise DataError(f"broken zip member {member} ({err})") from None

    def close(self) -> None:
        self.zf.close()


class FolderReader:
    """Images from an already extracted folder: `<path>/<folder>/<file>` or `<path>/<file>`."""

    def __init__(self, path: str, folder: str):
        self.path, self.folder = Path(path), folder

    def locate(self, file_name: str) -> str | None:
        # file_name comes from the annotation JSON: it must resolve inside the image folder.
        inner = path_inside(self.path, f"{self.folder}/{file_name}" if self.folder else file_name, "file_name")
        for candidate in (inner, path_inside(self.path, file_name, "file_name")):
            if candidate.is_file():
                return str(candidate)
        return None

    def read(self, file_name: str) -> bytes | None:
        found = self.locate(file_name)
        if not found:
            return None
        _check_image_size(Path(found).stat().st_size, found)
        return Path(found).read_bytes()

    def close(self) -> None:
        pass


def image_reader(path: str, folder: str):
    return FolderReader(path, folder) if Path(path).is_dir() else ZipReader(path, folder)


# ----------------------------------------------------------------------------------------------
# The store
# ----------------------------------------------------------------------------------------------
def write_segmentation_store(
    out_dir: Path,
    items: list[dict],
    work,
    open_context,
    classes: list[str],
    quarantine: list[dict],
    store_size: tuple[int, int],
    workers: int,
    dataset: str,
    required_splits=(),
    instance_writer=None,
) -> dict:
    """Run `work(ctx, item)` over items (in parallel, in order) and write manifest + store.

    `work` returns `(rows, manifest_fields)` or `(None, reason)` for a quarantined item. Every split
    an item was assigned to, and every one in `required_splits`, must keep at least one row.
    `instance_writer` (a `datasets.instances.InstanceStoreWriter`): gets `rows["instances"]` of every
    kept row, in store order.
    """
    out_dir = Path(out_dir)
    height, width = store_size
    writer = StoreWriter(out_dir, len(items), {"images": (height, width, 3), "classmaps": (height, width)})
    manifest_rows = []
    try:
        for slot, (item, (rows, info)) in enumerate(
            zip(items, ordered_map(work, items, open_context=open_context, workers=workers))
        ):
            if rows is None:
                quarantine.append({"source": item["source"], "reason": info, "split": item["split"]})
                continue
            instances = rows.pop("instances", None)
            writer.put(slot, **rows)
            if instance_writer is not None:
                instance_writer.put(info["id"], *instances)
            manifest_rows.append(info)
    except BaseException:
        writer.abort()
        if instance_writer is not None:
            instance_writer.abort()
        raise
    count = writer.finish()
    manifest = write_store_tables(out_dir, manifest_rows, quarantine, "segmentation", classes)
    summary = {"images": count, "quarantined": len(quarantine), "splits": split_counts(manifest)}
    if instance_writer is not None:  # per-instance drops (counted by reason) are in its meta file
        summary["instances"] = instance_writer.finish()
    log.info("%s prepared: %s", dataset, summary)
    if count == 0:
        raise DataError(f"{dataset}: no usable labelled image; see {out_dir / 'quarantine.tsv'}")
    require_splits(dataset, manifest, quarantine, {item["split"] for item in items} | set(required_splits), out_dir)
    return summary
