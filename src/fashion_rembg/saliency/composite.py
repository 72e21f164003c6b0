"""Composite images over a background fill using a soft saliency mask.

``out = round(img * a + fill * (1 - a))`` with ``a = mask / 255``. Fills are
computed per chunk; the two that depend on more than the chunk are made
chunk-independent: ``mean`` takes a precomputed dataset mean (``mean_color``)
and ``noise`` seeds each image from ``(seed, global index)``, so streaming
chunk by chunk gives exactly the whole-array result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from ..atomic import atomic_npy

# Gaussian sigma of the "blur" fill, as a fraction of the longer image side:
# strong enough to remove the background's structure, keep its colours.
BLUR_SIGMA_FRACTION = 0.05


def _const(value: float) -> Callable[..., np.ndarray]:
    def fill(images: np.ndarray, **_: object) -> np.ndarray:
        return np.full((1, 1, 1, 3), value, dtype=np.float32)

    return fill


def dataset_mean_color(images: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Per-channel mean colour (float64, shape (3,)) of uint8 (N,H,W,3) images, streamed."""
    total = np.zeros(3, dtype=np.float64)
    count = 0
    for s in range(0, len(images), chunk):
        c = np.asarray(images[s : s + chunk])
        total += c.reshape(-1, 3).sum(axis=0, dtype=np.float64)
        count += c.shape[0] * c.shape[1] * c.shape[2]
    if count == 0:
        raise ValueError("cannot compute the mean colour of an empty image set")
    return total / count


def _fill_mean(images: np.ndarray, *, mean_color: np.ndarray | None = None, **_: object) -> np.ndarray:
    mc = dataset_mean_color(images) if mean_color is None else np.asarray(mean_color, dtype=np.float64)
    # Rounded so that the fill is an actual colour (a=0 gives exactly it).
    return np.rint(mc).astype(np.float32).reshape(1, 1, 1, 3)


def _fill_blur(images: np.ndarray, **_: object) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    sigma = BLUR_SIGMA_FRACTION * max(images.shape[1], images.shape[2])
    out = gaussian_filter(images.astype(np.float32), sigma=(0, sigma, sigma, 0), mode="reflect")
    return np.rint(out)


def _fill_noise(images: np.ndarray, *, seed: int = 0, offset: int = 0, **_: object) -> np.ndarray:
    n, h, w, _c = images.shape
    out = np.empty((n, h, w, 3), dtype=np.float32)
    for i in range(n):
        # Per-image stream keyed by the global index: chunking does not matter.
        rng = np.random.default_rng([seed, offset + i])
        out[i] = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    return out


# name -> fn(images_chunk, *, seed, offset, mean_color) -> float32 array
# broadcastable to (N, H, W, 3) with integer values in [0, 255].
FILLS: dict[str, Callable[..., np.ndarray]] = {
    "black": _const(0.0),
    "white": _const(255.0),
    "gray": _const(128.0),
    "mean": _fill_mean,
    "blur": _fill_blur,
    "noise": _fill_noise,
}


def _check(images: np.ndarray, masks: np.ndarray, fill: str) -> None:
    if fill not in FILLS:
        raise ValueError(f"unknown fill {fill!r}; choose one of {', '.join(FILLS)}")
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be uint8 (N, H, W, 3), got {images.dtype} {tuple(images.shape)}")
    if masks.dtype != np.uint8 or masks.shape != images.shape[:3]:
        raise ValueError(
            f"masks must be uint8 {tuple(images.shape[:3])} matching the images, "
            f"got {masks.dtype} {tuple(masks.shape)}"
        )


def composite(
    images: np.ndarray,
    masks: np.ndarray,
    fill: str,
    *,
    seed: int = 0,
    offset: int = 0,
    mean_color: np.ndarray | None = None,
) -> np.ndarray:
    """Alpha-composite ``images`` (uint8 (N,H,W,3)) over ``fill`` with ``masks`` (uint8 (N,H,W)).

    ``offset`` is the global index of ``images[0]`` (noise seeding) and
    ``mean_color`` the dataset mean for the ``mean`` fill; both only matter
    when processing a larger array in chunks (defaults: this array alone).
    """
    _check(images, masks, fill)
    bg = FILLS[fill](images, seed=seed, offset=offset, mean_color=mean_color)
    a = masks.astype(np.float32)[..., None] / np.float32(255.0)
    out = images.astype(np.float32) * a + bg * (np.float32(1.0) - a)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def write_composites(
    images_npy: Path,
    masks_npy: Path,
    out_npy: Path,
    fill: str,
    seed: int = 0,
    *,
    chunk: int = 128,
) -> Path:
    """Streamed :func:`composite` of two ``.npy`` stores into ``out_npy`` (atomic rename)."""
    images_npy, masks_npy, out_npy = Path(images_npy), Path(masks_npy), Path(out_npy)
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    images = np.load(images_npy, mmap_mode="r")
    masks = np.load(masks_npy, mmap_mode="r")
    if masks.shape != images.shape[:3]:
        raise ValueError(
            f"{masks_npy} has shape {tuple(masks.shape)} but {images_npy} needs masks of "
            f"shape {tuple(images.shape[:3])}"
        )
    _check(images[:0], masks[:0], fill)
    mc = dataset_mean_color(images) if fill == "mean" and images.size else None
    with atomic_npy(out_npy, images.shape) as out:
        for s in range(0, len(images), chunk):
            out[s : s + chunk] = composite(
                np.asarray(images[s : s + chunk]),
                np.asarray(masks[s : s + chunk]),
                fill,
                seed=seed,
                offset=s,
                mean_color=mc,
            )
    return out_npy
