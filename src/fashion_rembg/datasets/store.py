"""The prepared image store: images decoded once, at the working resolution, in one .npy."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageOps

MANIFEST_COLUMNS = ["index", "id", "source", "split", "label", "label_idx", "note"]


def fit_image(img: Image.Image, size: tuple[int, int], resample=Image.Resampling.BILINEAR) -> Image.Image:
    """Resize to cover `size` (H, W) keeping the aspect ratio, then centre-crop.

    The same geometry is applied to images, true masks and class maps (NEAREST for labels),
    so they stay aligned pixel for pixel.
    """
    height, width = size
    return ImageOps.fit(img, (width, height), method=resample, centering=(0.5, 0.5))


def to_rgb(img: Image.Image) -> tuple[Image.Image, str]:
    """Apply EXIF orientation and convert to 8-bit RGB; returns a note of what changed."""
    notes = []
    transposed = ImageOps.exif_transpose(img)
    if transposed is not img and img.getexif().get(0x0112, 1) != 1:
        notes.append("exif-rotated")
    img = transposed
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        peak = max(arr.max(), 1.0)
        img = Image.fromarray((arr / peak * 255.0).round().astype(np.uint8), mode="L")
        notes.append("16-bit→8-bit")
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
    """Streams rows into uint8 .npy arrays; memory stays bounded by one image.

    Rows that fail later are dropped by `finish`, which compacts into the final files.
    """

    def __init__(self, out_dir: Path, capacity: int, arrays: dict[str, tuple[int, ...]]):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.capacity = capacity
        self.shapes = arrays
        self.tmp = {
            name: np.lib.format.open_memmap(
                self.out_dir / f".{name}.partial.npy", mode="w+", dtype=np.uint8, shape=(max(capacity, 1), *shape)
            )
            for name, shape in arrays.items()
        }
        self.kept: list[int] = []

    def put(self, slot: int, **rows: np.ndarray) -> None:
        for name, row in rows.items():
            self.tmp[name][slot] = row
        self.kept.append(slot)

    def finish(self) -> int:
        kept = sorted(self.kept)
        for name, shape in self.shapes.items():
            final = self.out_dir / f"{name}.npy"
            partial = self.out_dir / f".{name}.compact.npy"
            out = np.lib.format.open_memmap(partial, mode="w+", dtype=np.uint8, shape=(len(kept), *shape))
            for start in range(0, len(kept), 256):
                out[start : start + 256] = self.tmp[name][kept[start : start + 256]]
            out.flush()
            del out
            os.replace(partial, final)
        for name in self.shapes:
            del self.tmp[name]
            (self.out_dir / f".{name}.partial.npy").unlink(missing_ok=True)
        return len(kept)


def write_tsv(df: pd.DataFrame, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    df.to_csv(tmp, sep="\t", index=False, lineterminator="\n")
    os.replace(tmp, path)


def write_json(obj, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def read_manifest(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype={"id": str, "source": str, "label": str, "note": str},
                       keep_default_na=False)
