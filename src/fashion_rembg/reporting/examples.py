"""The example grid of the report: images, their rembg masks and composites (and true masks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from fashion_rembg.reporting.figure_style import GRID_DPI, report_style, save_png, snap_inches

GRID_CELL_IN = 2.0  # inches per image column
GRID_HEADER_IN = 0.4  # column titles
GRID_LEFT_IN = 0.3  # row labels
_GRID_PAD = 0.03  # fraction of a cell left blank around each image


def _as_uint8(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype == np.uint8:
        return a
    if np.issubdtype(a.dtype, np.floating) and a.size and np.nanmax(a) <= 1.0:
        return np.clip(np.round(a * 255), 0, 255).astype(np.uint8)  # [0, 1] floats
    if np.issubdtype(a.dtype, np.number):
        return np.clip(a, 0, 255).astype(np.uint8)
    raise ValueError(f"plot_example_grid: {name} must be numeric, got dtype {a.dtype}")


def _as_mask(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim == 4 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim != 3:
        raise ValueError(f"plot_example_grid: {name} must be (N, H, W), got shape {a.shape}")
    return a


def example_grid_figsize(
    n_rows: int, n_cols: int, height: int, width: int, dpi: int = GRID_DPI
) -> tuple[float, float]:
    """Size (inches) of :func:`plot_example_grid`: 2 in per column, rows keep the image aspect."""
    return (snap_inches(GRID_LEFT_IN + n_cols * GRID_CELL_IN, dpi),
            snap_inches(GRID_HEADER_IN + n_rows * GRID_CELL_IN * height / width, dpi))


def plot_example_grid(
    images: np.ndarray,
    masks: np.ndarray,
    composites: np.ndarray,
    out_png: Path | str,
    n: int = 6,
    truth: np.ndarray | None = None,
    seed: int = 0,
    dpi: int = GRID_DPI,
) -> Path:
    """Rows = ``n`` examples drawn with ``seed``; columns = image | mask | rembg image (| true mask).

    ``images``/``composites``: (N, H, W, 3); ``masks``/``truth``: (N, H, W) alpha in
    0..255 (or floats in [0, 1]). With ``truth`` each row also shows the IoU of the
    mask (thresholded at 50 %) against it. Arrays may be memory-mapped: only the
    drawn rows are read.
    """
    if n < 1:
        raise ValueError(f"plot_example_grid: n must be >= 1, got {n}")
    images_shape = np.shape(images)
    if len(images_shape) != 4 or images_shape[-1] != 3:
        raise ValueError(f"plot_example_grid: images must be (N, H, W, 3), got shape {images_shape}")
    if np.shape(composites) != images_shape:
        raise ValueError(
            f"plot_example_grid: composites shape {np.shape(composites)} != images shape {images_shape}")
    count, height, width = images_shape[:3]
    arrays = {"masks": masks} | ({"truth": truth} if truth is not None else {})
    for name, a in arrays.items():
        shape = np.shape(a)
        if shape[:3] != (count, height, width):
            raise ValueError(
                f"plot_example_grid: {name} shape {shape} does not match images {images_shape[:3]}")
    if count == 0:
        raise ValueError("plot_example_grid: no images")

    rng = np.random.default_rng(seed)
    idx = np.arange(count) if count <= n else np.sort(rng.choice(count, size=n, replace=False))
    img = _as_uint8(np.asarray(images[idx]), "images")
    comp = _as_uint8(np.asarray(composites[idx]), "composites")
    msk = _as_uint8(_as_mask(np.asarray(masks[idx]), "masks"), "masks")
    tru = _as_uint8(_as_mask(np.asarray(truth[idx]), "truth"), "truth") if truth is not None else None

    columns = [("image", img, None), ("rembg mask", msk, "gray"), ("rembg image", comp, None)]
    if tru is not None:
        columns.append(("true mask", tru, "gray"))
    n_rows, n_cols = len(idx), len(columns)
    fw, fh = example_grid_figsize(n_rows, n_cols, height, width, dpi)
    cell_h = GRID_CELL_IN * height / width

    with report_style():
        fig = Figure(figsize=(fw, fh))
        for i, k in enumerate(idx):
            for j, (title, arr, cmap) in enumerate(columns):
                # Manual placement: exact, gap-free grid independent of layout engines.
                x0 = (GRID_LEFT_IN + j * GRID_CELL_IN) / fw
                y0 = (fh - GRID_HEADER_IN - (i + 1) * cell_h) / fh
                pw, ph = GRID_CELL_IN / fw, cell_h / fh
                ax = fig.add_axes((x0 + pw * _GRID_PAD, y0 + ph * _GRID_PAD,
                                   pw * (1 - 2 * _GRID_PAD), ph * (1 - 2 * _GRID_PAD)))
                ax.imshow(arr[i], cmap=cmap, vmin=0, vmax=255, interpolation="antialiased")
                ax.set_xticks([])
                ax.set_yticks([])
                ax.grid(False)
                for spine in ax.spines.values():
                    spine.set_visible(True)
                    spine.set_color("#bbbbbb")
                    spine.set_linewidth(0.6)
                if i == 0:
                    ax.set_title(title, fontsize=10, pad=4)
                if j == 0:
                    ax.set_ylabel(f"#{int(k)}", fontsize=8, labelpad=2)
                if title == "rembg mask" and tru is not None:
                    pred, true = msk[i] >= 128, tru[i] >= 128
                    union = np.logical_or(pred, true).sum()
                    iou = np.logical_and(pred, true).sum() / union if union else 1.0
                    ax.text(0.03, 0.03, f"IoU {iou:.2f}", transform=ax.transAxes, fontsize=7.5,
                            color="white", ha="left", va="bottom",
                            bbox={"boxstyle": "round,pad=0.2", "facecolor": "#0072B2",
                                  "edgecolor": "none", "alpha": 0.85})
        return save_png(fig, out_png, dpi)


# --------------------------------------------------------------------- instance segmentation

SCORE_THRESHOLD = 0.5  # detections drawn: the same threshold as the per-image segm quality


def _class_colour(category: int) -> np.ndarray:
    from matplotlib import colormaps

    return np.asarray(colormaps["tab20"](int(category) % 20)[:3]) * 255


def instance_overlay(image: np.ndarray, annotations: list[dict], alpha: float = 0.55) -> np.ndarray:
    """``image`` (H, W, 3) uint8 with each COCO annotation/result mask (RLE ``segmentation``) painted
    in its class colour, largest first so small garments stay visible."""
    from pycocotools import mask as mask_utils

    out = image.astype(np.float64)
    decoded = [(mask_utils.decode({"size": a["segmentation"]["size"], "counts": a["segmentation"]["counts"]
                                   .encode()}).astype(bool), a["category_id"]) for a in annotations]  # fmt: skip
    for mask, category in sorted(decoded, key=lambda d: -int(d[0].sum())):
        out[mask] = (1 - alpha) * out[mask] + alpha * _class_colour(category)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _by_image(annotations: list[dict], threshold: float | None) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {}
    for a in annotations:
        if threshold is None or a.get("score", 1.0) >= threshold:
            out.setdefault(int(a["image_id"]), []).append(a)
    return out


def plot_instance_examples(images: np.ndarray, composites: np.ndarray, ground_truth: dict,
                           original_results: list[dict], rembg_results: list[dict], out_png: Path | str,
                           n: int = 6, seed: int = 0, dpi: int = GRID_DPI) -> Path:  # fmt: skip
    """Rows = ``n`` test images (store rows = COCO image ids) drawn with ``seed``; columns = true
    instances | the original-trained model on the original image | the rembg-trained model on its
    rembg image (detections with score ≥ 0.5, one colour per class)."""
    ids = sorted(int(im["id"]) for im in ground_truth["images"])
    if not ids:
        raise ValueError("plot_instance_examples: the ground truth has no images")
    rng = np.random.default_rng(seed)
    rows = ids if len(ids) <= n else sorted(rng.choice(ids, size=n, replace=False).tolist())
    truth = _by_image(ground_truth["annotations"], None)
    original, rembg = _by_image(original_results, SCORE_THRESHOLD), _by_image(rembg_results, SCORE_THRESHOLD)
    columns = [("true instances", lambda r: instance_overlay(np.asarray(images[r]), truth.get(r, []))),
               ("original: predicted", lambda r: instance_overlay(np.asarray(images[r]), original.get(r, []))),
               ("rembg: predicted", lambda r: instance_overlay(np.asarray(composites[r]), rembg.get(r, [])))]
    height, width = np.shape(images)[1:3]
    fw, fh = example_grid_figsize(len(rows), len(columns), height, width, dpi)
    cell_h = GRID_CELL_IN * height / width
    with report_style():
        fig = Figure(figsize=(fw, fh))
        for i, row in enumerate(rows):
            for j, (title, draw) in enumerate(columns):
                x0, y0 = (GRID_LEFT_IN + j * GRID_CELL_IN) / fw, (fh - GRID_HEADER_IN - (i + 1) * cell_h) / fh
                pw, ph = GRID_CELL_IN / fw, cell_h / fh
                ax = fig.add_axes((x0 + pw * _GRID_PAD, y0 + ph * _GRID_PAD,
                                   pw * (1 - 2 * _GRID_PAD), ph * (1 - 2 * _GRID_PAD)))  # fmt: skip
                ax.imshow(draw(row), interpolation="antialiased")
                ax.set_xticks([])
                ax.set_yticks([])
                ax.grid(False)
                if i == 0:
                    ax.set_title(title, fontsize=10, pad=4)
                if j == 0:
                    ax.set_ylabel(f"#{row}", fontsize=8, labelpad=2)
        return save_png(fig, out_png, dpi)


def plot_instance_examples_from_files(images: Path | str, composites: Path | str, original_coco: Path | str,
                                      rembg_coco: Path | str, out_png: Path | str, n: int = 6) -> Path:  # fmt: skip
    """:func:`plot_instance_examples` from the store arrays and two runs' COCO folders
    (``<run>/coco/<condition>/``: ground_truth.json, results_segm.json)."""
    import json

    def read(folder, name):
        return json.loads((Path(folder) / name).read_text())

    return plot_instance_examples(np.load(images, mmap_mode="r"), np.load(composites, mmap_mode="r"),
                                  read(original_coco, "ground_truth.json"), read(original_coco, "results_segm.json"),
                                  read(rembg_coco, "results_segm.json"), out_png, n=n)  # fmt: skip
