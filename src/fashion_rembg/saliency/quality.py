"""Saliency-mask quality against true foreground masks, and garment recall.

Metrics follow the salient-object-detection literature:
* IoU of ``pred >= 128`` vs ``truth >= 128`` (two empty masks -> IoU 1);
* MAE of ``pred / 255`` vs ``truth / 255`` (Perazzi et al. 2012);
* adaptive F-beta (beta^2 = 0.3, Achanta et al. 2009): ``pred / 255`` binarised at
  ``min(2 * mean(pred / 255), 1)``; an all-zero prediction (threshold 0)
  predicts nothing rather than everything; nothing to find and nothing
  predicted -> 1.

Where no true masks exist (ModaNet), the garment masks of the segmentation class
map give *garment recall*: the fraction of garment pixels the mask keeps
(``pred >= 128``), plus its soft version (mean alpha over garment pixels). The
person's skin and hair are foreground but not garments, so only recall is
meaningful there, not precision.

Everything is computed in chunks of images (vectorised within a chunk), so memmaps
of any size stream through in bounded memory.
"""

from __future__ import annotations

import numpy as np

BETA2 = 0.3
CHUNK = 256


def _check(pred: np.ndarray, truth: np.ndarray, what: str = "truth") -> None:
    for name, a in (("pred", pred), (what, truth)):
        if a.dtype != np.uint8 or a.ndim != 3:
            raise ValueError(f"{name} must be uint8 (N, H, W), got {a.dtype} {tuple(a.shape)}")
    if pred.shape != truth.shape:
        raise ValueError(f"pred shape {tuple(pred.shape)} != {what} shape {tuple(truth.shape)}")


def _count(a: np.ndarray) -> np.ndarray:
    return np.count_nonzero(a.reshape(len(a), -1), axis=1)


def _chunk_metrics(p: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-image IoU, MAE, adaptive F-beta for a chunk (uint8 (n, H, W) each)."""
    n = len(p)
    pbin, tbin = p >= 128, t >= 128
    inter, union = _count(pbin & tbin), _count(pbin | tbin)
    iou = np.where(union == 0, 1.0, inter / np.maximum(union, 1))
    p01 = p.astype(np.float64) / 255.0
    flat_p = p01.reshape(n, -1)
    if flat_p.shape[1] == 0:
        return iou, np.zeros(n), np.ones(n)
    mae = np.abs(flat_p - t.reshape(n, -1).astype(np.float64) / 255.0).mean(axis=1)
    thr = np.minimum(2.0 * flat_p.mean(axis=1), 1.0)
    pb = (flat_p >= thr[:, None]) & (thr[:, None] > 0)
    tb = tbin.reshape(n, -1)
    tp = np.count_nonzero(pb & tb, axis=1)
    npred, ntrue = np.count_nonzero(pb, axis=1), np.count_nonzero(tb, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision, recall = tp / npred, tp / ntrue
        f = (1 + BETA2) * precision * recall / (BETA2 * precision + recall)
    fb = np.where(tp == 0, 0.0, f)
    fb = np.where((npred == 0) & (ntrue == 0), 1.0, fb)
    return iou, mae, fb


def mask_quality(pred: np.ndarray, truth: np.ndarray) -> dict:
    """Per-image and mean IoU / MAE / adaptive F-beta, plus two trivial baselines.

    ``pred`` and ``truth`` are uint8 ``(N, H, W)`` (truth 0/255; foreground
    is ``>= 128`` for both). Baselines: an all-foreground prediction, and the
    "centre prior" = pixelwise mean of the truth masks thresholded at 0.5
    (an in-sample prior, hence optimistic).
    """
    _check(pred, truth)
    n = int(pred.shape[0])
    if n == 0:
        raise ValueError("mask_quality needs at least one image (got N=0)")
    prior = np.zeros(pred.shape[1:], dtype=np.int64)
    for s in range(0, n, CHUNK):
        prior += np.count_nonzero(np.asarray(truth[s : s + CHUNK]) >= 128, axis=0)
    prior = (prior / n) >= 0.5
    ious, maes, fbs, base_all, base_prior = [], [], [], [], []
    for s in range(0, n, CHUNK):
        p, t = np.asarray(pred[s : s + CHUNK]), np.asarray(truth[s : s + CHUNK])
        iou, mae, fb = _chunk_metrics(p, t)
        ious += iou.tolist()
        maes += mae.tolist()
        fbs += fb.tolist()
        tbin = t >= 128
        ntrue = _count(tbin)
        npix = int(np.prod(t.shape[1:]))
        base_all += (ntrue / npix).tolist() if npix else [1.0] * len(t)
        inter, union = _count(prior[None] & tbin), _count(prior[None] | tbin)
        base_prior += np.where(union == 0, 1.0, inter / np.maximum(union, 1)).tolist()

    def mean(v: list[float]) -> float:
        return float(np.mean(v))

    return {
        "n": n,
        "mean_iou": mean(ious),
        "mean_mae": mean(maes),
        "mean_fbeta": mean(fbs),
        "per_image": {"iou": ious, "mae": maes, "fbeta": fbs},
        "baseline_iou_all_foreground": mean(base_all),
        "baseline_iou_center_prior": mean(base_prior),
    }


def garment_recall(pred: np.ndarray, classmaps: np.ndarray) -> dict:
    """How much of the garments (class map > 0) a mask keeps, per image and on average.

    Per image: ``garment_recall`` = |pred >= 128 ∩ garments| / |garments|,
    ``garment_soft_recall`` = mean of pred / 255 over garment pixels (None for an
    image without garments; those are left out of the means), ``kept_fraction`` =
    share of the image the mask keeps (a mask keeping everything has recall 1).
    """
    _check(pred, classmaps, "classmaps")
    n = int(pred.shape[0])
    if n == 0:
        raise ValueError("garment_recall needs at least one image (got N=0)")
    recall: list[float | None] = []
    soft: list[float | None] = []
    kept: list[float] = []
    for s in range(0, n, CHUNK):
        p, c = np.asarray(pred[s : s + CHUNK]), np.asarray(classmaps[s : s + CHUNK])
        g = (c > 0).reshape(len(p), -1)
        pf = p.reshape(len(p), -1)
        ng = np.count_nonzero(g, axis=1)
        hit = np.count_nonzero((pf >= 128) & g, axis=1)
        alpha = np.where(g, pf, 0).sum(axis=1, dtype=np.float64) / 255.0
        npix = max(pf.shape[1], 1)
        kept += (np.count_nonzero(pf >= 128, axis=1) / npix).tolist()
        for k in range(len(p)):
            recall.append(float(hit[k] / ng[k]) if ng[k] else None)
            soft.append(float(alpha[k] / ng[k]) if ng[k] else None)
    valid = [r for r in recall if r is not None]
    valid_soft = [r for r in soft if r is not None]
    return {
        "n": n,
        "n_with_garments": len(valid),
        "mean_garment_recall": float(np.mean(valid)) if valid else None,
        "mean_garment_soft_recall": float(np.mean(valid_soft)) if valid_soft else None,
        "mean_kept_fraction": float(np.mean(kept)),
        "per_image": {"garment_recall": recall, "garment_soft_recall": soft, "kept_fraction": kept},
    }


def extremes(scores: list[float | None], k: int) -> tuple[list[int], list[int]]:
    """Indices of the ``k`` worst (ascending) and ``k`` best (descending) scores; None is skipped.

    Ties break by index, so the choice is deterministic.
    """
    valid = [(float(s), i) for i, s in enumerate(scores) if s is not None and np.isfinite(s)]
    ordered = sorted(valid)
    worst = [i for _, i in ordered[:k]]
    best = [i for _, i in sorted(valid, key=lambda si: (-si[0], si[1]))[:k]]
    return worst, best
