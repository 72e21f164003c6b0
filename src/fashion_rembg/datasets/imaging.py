"""Decode one raw image (file or bytes) into the store's RGB row, or say why it is unusable.

Used by every prepare path (demo and real data, serial and parallel), so the same bytes always
give the same row.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import DataError
from .store import fit_image, to_rgb

# EXIF orientation → the transposition that displays the stored pixels upright (as ImageOps.exif_transpose).
EXIF_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError,
                 Image.DecompressionBombError, Image.DecompressionBombWarning)


def orientation(img: Image.Image) -> int:
    try:
        value = int(img.getexif().get(0x0112, 1))
    except Exception:  # a broken EXIF block must not make the pixels unusable
        return 1
    return value if value in EXIF_TRANSPOSE else 1


def open_raw(source: bytes | str | Path, draft_size: tuple[int, int] | None = None) -> Image.Image:
    """Fully decoded image *without* EXIF orientation applied; DataError if unusable.

    `draft_size` (W, H) lets the JPEG decoder scale down by 1/2..1/8 while staying at least that
    large (what Image.thumbnail does); the caller passes twice the store size, so quality holds.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.stat().st_size == 0:
            raise DataError("zero-byte file")
        opener = path
    else:
        if len(source) == 0:
            raise DataError("zero-byte image")
        opener = io.BytesIO(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(opener)
            if draft_size is not None and img.format == "JPEG":
                w, h = draft_size
                if orientation(img) in (5, 6, 7, 8):  # stored sideways: cover the swapped size
                    w, h = h, w
                img.draft(img.mode if img.mode in ("RGB", "L") else None, (w, h))
            img.load()
            return img
    except DataError:
        raise
    except DECODE_ERRORS as err:
        raise DataError(f"undecodable image ({type(err).__name__}: {err})") from None


def store_row(source: bytes | str | Path, store_size: tuple[int, int], fit: str = "cover") -> tuple[np.ndarray, str]:
    """(H, W, 3) uint8 row at the working resolution (`fit`: see store.fit_image), plus a note of the
    conversions applied."""
    height, width = store_size
    img = open_raw(source, draft_size=(2 * width, 2 * height))
    try:
        rgb, note = to_rgb(img)
        return np.asarray(fit_image(rgb, store_size, fit=fit), dtype=np.uint8), note
    except DECODE_ERRORS as err:
        raise DataError(f"undecodable image ({type(err).__name__}: {err})") from None


def transpose_like(img: Image.Image, exif_orientation: int) -> Image.Image:
    """Apply the EXIF transposition of another image (e.g. to a class map drawn on the stored pixels)."""
    method = EXIF_TRANSPOSE.get(exif_orientation)
    return img if method is None else img.transpose(method)


__all__ = ["EXIF_TRANSPOSE", "open_raw", "orientation", "store_row", "transpose_like"]
