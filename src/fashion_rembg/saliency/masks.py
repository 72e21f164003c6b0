"""Saliency masks through rembg's public API (``remove(..., only_mask=True)``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image


def _check_images(images: np.ndarray, what: str = "images") -> None:
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(
            f"{what} must be uint8 (N, H, W, 3) RGB, got {images.dtype} {tuple(images.shape)}"
        )


def compute_masks(images: np.ndarray, session, *, post_process: bool = False) -> np.ndarray:
    """Soft saliency masks, uint8 ``(N, H, W)``, one ``rembg.remove`` call per image.

    ``session`` must be an explicit rembg session (``session=None`` would make
    rembg download its default model).
    """
    from rembg import remove

    if session is None:
        raise ValueError("compute_masks needs an explicit rembg session (see saliency.sessions.open_session)")
    _check_images(images)
    n, h, w, _ = images.shape
    out = np.empty((n, h, w), dtype=np.uint8)
    for i in range(n):
        mask = remove(
            Image.fromarray(np.ascontiguousarray(images[i])),
            session=session,
            only_mask=True,
            post_process_mask=post_process,
        )
        arr = np.asarray(mask.convert("L") if mask.mode != "L" else mask)
        if arr.shape != (h, w):
            raise RuntimeError(
                f"rembg returned a mask of shape {arr.shape} for an image of shape {(h, w)}; "
                f"the session ({type(session).__name__}) does not produce one mask per image"
            )
        out[i] = arr
    return out


def write_masks(
    images_npy: Path,
    out_npy: Path,
    session,
    *,
    post_process: bool = False,
    chunk: int = 64,
) -> Path:
    """Stream ``images_npy`` (uint8 (N,H,W,3)) through rembg into ``out_npy`` (uint8 (N,H,W)).

    Reads with ``mmap_mode="r"`` and writes chunk by chunk into a temporary
    ``.npy`` memmap that is renamed onto ``out_npy`` only when complete.
    """
    images_npy, out_npy = Path(images_npy), Path(out_npy)
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    images = np.load(images_npy, mmap_mode="r")
    _check_images(images, what=str(images_npy))
    n, h, w, _ = images.shape
    out_npy.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_npy.with_name(f".{out_npy.name}.tmp{os.getpid()}")
    try:
        if n == 0 or h == 0 or w == 0:
            with open(tmp, "wb") as f:  # a zero-size memmap cannot be created
                np.save(f, np.empty((n, h, w), dtype=np.uint8))
        else:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, h, w))
            for s in range(0, n, chunk):
                out[s : s + chunk] = compute_masks(
                    np.asarray(images[s : s + chunk]), session, post_process=post_process
                )
            out.flush()
            del out  # close the memmap before the rename
        os.replace(tmp, out_npy)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out_npy
