"""The prepared image store: images decoded once, at the working resolution, in one .npy."""
from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageOps

from ..atomic import explain_write_errors, write_json, write_tsv

MANIFEST_COLUMNS = ["index", "id", "source", "split", "label", "label_idx", "note"]
SPLITS = ("train", "val", "test")


FITS = ("cover", "contain")
# Padding of `contain` images: the ImageNet mean, which the training input normalisation maps to 0,
# so a pad band reads to the network like its own zero padding (no edge, no colour cue). Single-band
# arrays (class maps, masks) pad with 0 = background.
PAD_RGB = (124, 116, 104)


def fit_image(img: Image.Image, size: tuple[int, int], resample=Image.Resampling.BILINEAR,
              fit: str = "cover") -> Image.Image:
    """Bring an image to `size` (H, W) keeping its aspect ratio.

    `cover`: resize to cover `size`, then centre-crop (fills the frame, loses what sticks out);
    `contain`: resize to fit inside `size`, then centre on a pad (keeps the whole photo).
    The same geometry is applied to images, true masks, class maps (NEAREST for labels) and
    photo-sized saliency masks, so they stay aligned pixel for pixel.
    """
    height, width = size
    if fit == "cover":
        return ImageOps.fit(img, (width, height), method=resample, centering=(0.5, 0.5))
    if fit == "contain":
        return ImageOps.pad(img, (width, height), method=resample, color=PAD_RGB if img.mode == "RGB" else 0,
                            centering=(0.5, 0.5))
    raise ValueError(f"unknown store fit {fit!r}: expected one of {FITS}")


def to_rgb(img: Image.Image) -> tuple[Image.Image, str]:
    """Apply EXIF orientation and convert to 8-bit RGB; returns a note of what changed."""
    notes = []
    transposed = ImageOps.exif_transpose(img)
    if transposed is not img and img.getexif().get(0x0112, 1) != 1:
        notes.append("exif-rotated")
    img = transposed
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # Absolute scale (65535 → 255), never per image: a dark frame must stay dark.
        arr = np.asarray(img, dtype=np.float64)
        if arr.min() < 0 or arr.max() > 65535:
            raise ValueError(f"{img.mode} image with values {arr.min():g}…{arr.max():g} outside the 16-bit range")
        img = Image.fromarray((arr / 257.0).round().astype(np.uint8), mode="L")
        notes.append("16-bit→8-bit")
    elif img.mode == "F":
        raise ValueError("32-bit float image: its intensity scale is unknown")
    mode = img.mode
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, img.convert("RGBA"))
        notes.append(f"{mode} alpha flattened on white")
    if img.mode != "RGB":
        notes.append(f"{img.mode}→RGB")
        img = img.convert("RGB")
    return img, ";".join(notes)


class StoreWriter:
    """Streams rows, in slot order, straight into uint8 .npy files.

    Rows are appended with plain writes (no memmap), so the resident memory stays bounded by one
    row whatever the dataset size, and quarantined slots are simply never written: `finish`
    rewrites the headers with the final row count instead of copying the arrays once more.
    """

    def __init__(self, out_dir: Path, capacity: int, arrays: dict[str, tuple[int, ...]]):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.capacity = capacity
        self.shapes = {name: tuple(int(s) for s in shape) for name, shape in arrays.items()}
        self.count = 0
        self.last_slot = -1
        self.files = {}
        self.header_len = {}
        for name, shape in self.shapes.items():
            header = npy_header((max(capacity, 1), *shape))
            with explain_write_errors(self._partial(name), self._needed(name)):
                fh = open(self._partial(name), "wb")
                fh.write(header)
            self.files[name] = fh
            self.header_len[name] = len(header)

    def _needed(self, name: str) -> int:
        return self.capacity * int(np.prod(self.shapes[name]))

    def _partial(self, name: str) -> Path:
        return self.out_dir / f".{name}.partial.npy"

    def put(self, slot: int, **rows: np.ndarray) -> None:
        if slot <= self.last_slot or slot >= max(self.capacity, 1):
            raise ValueError(f"StoreWriter: slot {slot} out of order (last {self.last_slot}, capacity {self.capacity})")
        if set(rows) != set(self.shapes):
            raise ValueError(f"StoreWriter: expected rows {sorted(self.shapes)}, got {sorted(rows)}")
        for name, row in rows.items():
            row = np.asarray(row)
            if row.shape != self.shapes[name] or row.dtype != np.uint8:
                raise ValueError(
                    f"StoreWriter: {name} row has {row.shape} {row.dtype}, expected {self.shapes[name]} uint8"
                )
            with explain_write_errors(self.out_dir / f"{name}.npy", self._needed(name)):
                self.files[name].write(np.ascontiguousarray(row).tobytes())
        self.last_slot = slot
        self.count += 1

    def finish(self) -> int:
        for name, shape in self.shapes.items():
            fh = self.files.pop(name)
            fh.seek(0)
            fh.write(npy_header((self.count, *shape), length=self.header_len[name]))
            fh.truncate(self.header_len[name] + self.count * int(np.prod(shape)))
            fh.close()
            os.replace(self._partial(name), self.out_dir / f"{name}.npy")
        return self.count

    def abort(self) -> None:
        for name in list(self.files):
            self.files.pop(name).close()
            self._partial(name).unlink(missing_ok=True)


def npy_header(shape: tuple[int, ...], length: int | None = None) -> bytes:
    """A .npy v1.0 header for a C-order uint8 array, padded to `length` bytes (default: 64-aligned)."""
    body = ("{'descr': '|u1', 'fortran_order': False, 'shape': %r, }" % (tuple(shape),)).encode("latin1")
    fixed = len(b"\x93NUMPY") + 2 + 2 + len(body) + 1
    total = length if length is not None else -(-fixed // 64) * 64
    if total < fixed:
        raise ValueError(f"npy header for shape {shape} needs {fixed} bytes, only {total} reserved")
    text = body + b" " * (total - fixed) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text


def write_store_tables(
    out_dir: Path, manifest_rows: list[dict], quarantine: list[dict], task: str, classes: list[str]
) -> pd.DataFrame:
    """manifest.tsv (rows in store order), quarantine.tsv and classes.json of a finished store."""
    out_dir = Path(out_dir)
    manifest = pd.DataFrame(manifest_rows, columns=MANIFEST_COLUMNS[1:])
    manifest.insert(0, "index", range(len(manifest)))
    write_tsv(out_dir / "manifest.tsv", manifest)
    write_tsv(out_dir / "quarantine.tsv", pd.DataFrame(quarantine, columns=["source", "reason"]))
    write_json(out_dir / "classes.json", {"task": task, "classes": list(classes)})
    announce_quarantine(out_dir, len(manifest), len(quarantine))
    return manifest


def announce_quarantine(out_dir: Path, kept: int, quarantined: int) -> None:
    """One console line at the end of prepare (the job log is redirected, the console is not)."""
    line = f"fashion-rembg: {out_dir}: {kept} images kept, {quarantined} quarantined"
    if quarantined:
        line += f" (reasons: {Path(out_dir) / 'quarantine.tsv'})"
    print(line, file=sys.__stderr__ or sys.stderr, flush=True)
    if sys.stderr is not sys.__stderr__:
        print(line, file=sys.stderr)


def require_splits(dataset: str, manifest: pd.DataFrame, quarantine: list[dict], splits, out_dir: Path) -> None:
    """Stop prepare when a split ended up empty (all its rows quarantined, or none listed), naming it
    and how many of its rows were quarantined; training would otherwise fail much later."""
    from ..errors import DataError

    kept = split_counts(manifest)
    for split in sorted(splits):
        if kept.get(split, 0) == 0:
            rows = [q["reason"] for q in quarantine if q.get("split") == split]
            example = f"; first reason: {rows[0]}" if rows else ""
            raise DataError(
                f"{dataset}: the {split} split is empty after quarantine ({len(rows)} of its rows "
                f"quarantined{example}); all reasons: {Path(out_dir) / 'quarantine.tsv'}"
            )


def split_counts(manifest: pd.DataFrame) -> dict[str, int]:
    return {k: int(v) for k, v in manifest["split"].value_counts().sort_index().items()}


def read_manifest(path: Path) -> pd.DataFrame:
    """Read ``manifest.tsv`` (columns per CONTRACTS.md), validating columns and splits."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest not found: {path} (run the prepare step first)")
    df = pd.read_csv(
        path,
        sep="\t",
        dtype={"id": str, "source": str, "split": str, "label": str, "note": str},
        keep_default_na=False,  # an empty label (segmentation) must stay "" not NaN
    )
    missing = [c for c in ("index", "id", "split", "label_idx") if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; expected {', '.join(MANIFEST_COLUMNS)}")
    bad = sorted(set(df["split"]) - set(SPLITS))
    if bad:
        raise ValueError(f"{path}: unknown split value(s) {bad}; allowed {list(SPLITS)}")
    df["index"] = df["index"].astype(np.int64)
    df["label_idx"] = df["label_idx"].astype(np.int64)
    if df["index"].duplicated().any():
        raise ValueError(f"{path}: duplicate values in column 'index'")
    return df
