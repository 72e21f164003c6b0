"""True foreground masks (demo only), aligned row by row with a prepared store."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..atomic import atomic_npy
from ..errors import DataError
from .store import fit_image, read_manifest


def prepare_truth(manifest: Path, truth_dir: Path, out_npy: Path, store_size: tuple[int, int],
                  fit: str = "cover") -> int:
    """`<truth_dir>/<source with .png>` for each manifest row → uint8 (N, H, W) 0/255, fitted like the images."""
    rows = read_manifest(manifest)
    height, width = store_size
    with atomic_npy(Path(out_npy), (len(rows), height, width)) as out:
        for i, source in enumerate(rows["source"]):
            path = Path(truth_dir) / Path(source).with_suffix(".png")
            if not path.is_file():
                raise DataError(f"true mask {path} missing for manifest row {i} ({source})")
            with Image.open(path) as mask:
                fitted = np.asarray(fit_image(mask.convert("L"), store_size, Image.Resampling.NEAREST, fit))
            out[i] = np.where(fitted >= 128, 255, 0).astype(np.uint8)
    return len(rows)
