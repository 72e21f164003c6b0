"""Saliency-mask quality against true foreground masks (demo data only).

Metrics follow the salient-object-detection literature:
* IoU of ``pred >= 128`` vs ``truth >= 128`` (two empty masks -> IoU 1);
* MAE of ``pred / 255`` vs ``truth / 255``;
* adaptive F-beta (beta^2 = 0.3): ``pred / 255`` binarised at
  ``min(2 * mean(pred / 255), 1)``; an all-zero prediction (threshold 0)
  predicts nothing rather than everything.
"""

from __future__ import annotations

import numpy as np

BETA2 = 0.3


def _check(pred: np.ndarray, truth: np.ndarray) -> None:
    for name, a in (("pred", pred), ("truth", truth)):
        if a.dtype != np.uint8 or a.ndim != 3:
            raise ValueError(f"{name} must be uint8 (N, H, W), got {a.dtype} {tuple(a.shape)}")
    if pred.shape != truth.shape:
        raise ValueError(f"pred shape {tuple(pred.shape)} != truth shape {tuple(truth.shape)}")


def _iou(p: np.ndarray, t: np.ndarray) -> float:
    union = np.count_nonzero(p | t)
    if union == 0:
        return 1.0
    return np.count_nonzero(p & t) / union


def _fbeta(p01: np.ndarray, t: np.ndarray) -> float:
    thr = min(2.0 * float(p01.mean()), 1.0)
    pb = p01 >= thr if thr > 0 else np.zeros_like(t)
    tp = np.count_nonzero(pb & t)
    npred, ntrue = np.count_nonzero(pb), np.count_nonzero(t)
    if npred == 0 and ntrue == 0:
        return 1.0  # nothing to find, nothing predicted
    if tp == 0:
        return 0.0
    precision, recall = tp / npred, tp / ntrue
    return (1 + BETA2) * precision * recall / (BETA2 * precision + recall)


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
    ious, maes, fbs, base_all, base_prior = [], [], [], [], []
    # Fraction of images where each pixel is foreground.
    prior = np.zeros(pred.shape[1:], dtype=np.float64)
    for i in range(n):
        prior += np.asarray(truth[i]) >= 128
    prior = (prior / max(n, 1)) >= 0.5
    for i in range(n):
        pi, ti = np.asarray(pred[i]), np.asarray(truth[i])
        pbin, tbin = pi >= 128, ti >= 128
        p01 = pi.astype(np.float64) / 255.0
        ious.append(float(_iou(pbin, tbin)))
        maes.append(float(np.abs(p01 - ti.astype(np.float64) / 255.0).mean()) if pi.size else 0.0)
        fbs.append(float(_fbeta(p01, tbin)) if pi.size else 1.0)
        base_all.append(float(_iou(np.ones_like(tbin), tbin)))
        base_prior.append(float(_iou(prior, tbin)))

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
