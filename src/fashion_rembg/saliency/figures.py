"""Worst and best masks of a mask set, for the report.

Drawn on a bare Agg ``Figure`` (no pyplot state) and saved without the
"Software" metadata, so the same inputs give byte-identical PNGs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .quality import extremes

# Overlay colours: kept and in the reference / kept outside it / reference missed.
TP, FP, FN = (40, 200, 60), (230, 50, 40), (40, 110, 240)


def _overlay(image: np.ndarray, mask: np.ndarray, ref: np.ndarray) -> np.ndarray:
    out = (image.astype(np.float32) * 0.35).astype(np.uint8)
    keep, r = mask >= 128, ref
    out[keep & r] = TP
    out[keep & ~r] = FP
    out[~keep & r] = FN
    return out


def plot_extremes(images: np.ndarray, masks: np.ndarray, quality: dict, out_png: Path, *, k: int = 3,
                  truth: np.ndarray | None = None, classmaps: np.ndarray | None = None, dpi: int = 100) -> Path:
    """Rows: the ``k`` worst then the ``k`` best images of a mask set.

    Ranked by IoU against the true masks when ``truth`` is given, else by garment
    recall against ``classmaps``. Columns: image | reference | mask | overlay
    (green kept reference, red kept outside the reference, blue reference missed).
    """
    per = quality.get("per_image", {})
    if truth is not None:
        metric, label, ref_all = "iou", "IoU", truth
    elif classmaps is not None:
        metric, label, ref_all = "garment_recall", "garment recall", classmaps
    else:
        raise ValueError("plot_extremes needs true masks or class maps to rank the masks")
    if metric not in per:
        raise ValueError(f"quality has no per-image {metric!r}; it was computed without that reference")
    scores = per[metric]
    if len(scores) != len(images):
        raise ValueError(f"quality lists {len(scores)} images, the store holds {len(images)}")
    worst, best = extremes(scores, k)
    rows = [("worst", r, i) for r, i in enumerate(worst, 1)] + [("best", r, i) for r, i in enumerate(best, 1)]
    if not rows:
        raise ValueError(f"no image has a defined {label} (no reference pixels anywhere)")
    h, w = images.shape[1:3]
    cell = 1.6
    fw, fh = 4 * cell + 1.3, len(rows) * cell * h / w + 0.5
    fig = Figure(figsize=(fw, fh), dpi=dpi)
    FigureCanvasAgg(fig)
    titles = ["image", "true mask" if truth is not None else "garments", "rembg mask", "overlay"]
    for row, (kind, rank, i) in enumerate(rows):
        img = np.asarray(images[i])
        mask = np.asarray(masks[i])
        ref = np.asarray(ref_all[i]) >= 128 if truth is not None else np.asarray(ref_all[i]) > 0
        panels = [(img, None), (ref.astype(np.uint8) * 255, "gray"), (mask, "gray"), (_overlay(img, mask, ref), None)]
        for col, (arr, cmap) in enumerate(panels):
            x0 = (1.2 + col * cell) / fw
            y0 = 1 - (0.4 + (row + 1) * cell * h / w) / fh
            ax = fig.add_axes((x0, y0, cell * 0.96 / fw, cell * h / w * 0.96 / fh))
            ax.imshow(arr, cmap=cmap, vmin=0, vmax=255, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(titles[col], fontsize=8)
            if col == 0:
                ax.set_ylabel(f"{kind} {rank}\n#{i}\n{label} {scores[i]:.3f}", fontsize=7, rotation=0,
                              ha="right", va="center")
    fig.suptitle(f"{quality.get('dataset', '')} / {quality.get('sod', '')}: worst and best by {label}",
                 fontsize=9, y=1 - 0.12 / fh)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=dpi, metadata={"Software": None})
    return out_png
