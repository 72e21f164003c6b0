"""The oracle variant: true foreground masks used in place of rembg's, where they exist (demo)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic import save_npy


def write_oracle_masks(truth_npy: str | Path, masks_npy: str | Path) -> Path:
    """Copy ``truth.npy`` (uint8 (N, H, W), 0/255) into the mask-set layout, so the composite rule
    with sod = oracle builds the oracle images exactly like rembg images."""
    truth = np.load(truth_npy, mmap_mode="r")
    if truth.dtype != np.uint8 or truth.ndim != 3:
        raise ValueError(f"{truth_npy}: expected uint8 true masks (N, H, W), got {truth.shape} {truth.dtype}")
    out = Path(masks_npy)
    save_npy(out, truth)
    return out
