"""Classification and segmentation metrics (pure numpy, JSON-ready).

Floats are rounded to 6 decimals so metrics.json is stable across runs and platforms.
Classes that do not occur (in truth for recall, in truth nor prediction for F1/IoU) are reported as
``None`` (JSON null) and left out of macro averages, as sklearn's default ``average="macro"`` does.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["classification_metrics", "confusion_from_maps", "miou_of_confusions", "segmentation_metrics"]

_DECIMALS = 6


def _r(x: float) -> float:
    return round(float(x), _DECIMALS)


def _confusion_from_labels(pred: np.ndarray, true: np.ndarray, num_classes: int) -> np.ndarray:
    flat = true.astype(np.int64) * num_classes + pred.astype(np.int64)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def classification_metrics(logits: np.ndarray, labels: np.ndarray, num_classes: int) -> dict:
    """Top-1/top-k accuracy, macro F1, per-class recall and confusion matrix (rows = true).

    ``logits``: ``(N, C)`` scores (any monotone transform, e.g. probabilities, works);
    ``labels``: ``(N,)`` ints in ``[0, C)``. Top-5 uses ``k = min(5, C)``.
    Ties are broken towards the lower class index (stable sort), consistently for top-1 and top-k.
    """
    logits = np.asarray(logits)
    labels = np.asarray(labels)
    if logits.ndim != 2 or logits.shape[1] != num_classes:
        raise ValueError(f"logits must have shape (N, {num_classes}), got {logits.shape}")
    if labels.shape != (logits.shape[0],):
        raise ValueError(f"labels must have shape ({logits.shape[0]},), got {labels.shape}")
    if labels.size == 0:
        raise ValueError("classification_metrics: no samples (empty logits/labels)")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes}), got range [{labels.min()}, {labels.max()}]")
    if not np.all(np.isfinite(logits)):
        raise ValueError("classification_metrics: logits contain NaN/inf (did training diverge?)")

    k = min(5, num_classes)
    order = np.argsort(-logits, axis=1, kind="stable")
    pred = order[:, 0]
    topk_hit = (order[:, :k] == labels[:, None]).any(axis=1)

    cm = _confusion_from_labels(pred, labels, num_classes)
    tp = np.diag(cm).astype(np.float64)
    true_count = cm.sum(axis=1)
    pred_count = cm.sum(axis=0)

    recall: list[float | None] = [
        _r(tp[c] / true_count[c]) if true_count[c] > 0 else None for c in range(num_classes)
    ]
    f1_den = true_count + pred_count  # = 2TP + FP + FN
    present = f1_den > 0
    f1 = 2.0 * tp[present] / f1_den[present]

    return {
        "top1": _r((pred == labels).mean()),
        "top5": _r(topk_hit.mean()),
        "macro_f1": _r(f1.mean()),
        "per_class_recall": recall,
        "confusion_matrix": cm.tolist(),
    }


def confusion_from_maps(pred: np.ndarray, target: np.ndarray, num_classes: int) -> np.ndarray:
    """Pixel confusion matrix ``(C, C)`` (rows = true class, columns = predicted), int64."""
    pred = np.asarray(pred)
    target = np.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {pred.shape} vs {target.shape}")
    for name, arr in (("pred", pred), ("target", target)):
        if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
            raise ValueError(f"{name} class indices must lie in [0, {num_classes}), got max {arr.max()}")
    return _confusion_from_labels(pred.ravel(), target.ravel(), num_classes)


def segmentation_metrics(confusion: np.ndarray, class_names: Sequence[str]) -> dict:
    """mIoU, per-class IoU and pixel accuracy from a pixel confusion matrix (rows = true).

    ``miou`` averages IoU over classes present in truth or prediction (background included);
    absent classes get ``None`` in ``per_class_iou``.
    """
    cm = np.asarray(confusion, dtype=np.float64)
    names = list(class_names)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion must be square (C, C), got {cm.shape}")
    if cm.shape[0] != len(names):
        raise ValueError(f"confusion is {cm.shape[0]}x{cm.shape[0]} but {len(names)} class names were given")
    total = cm.sum()
    if total <= 0:
        raise ValueError("segmentation_metrics: confusion matrix is empty (no pixels)")
    tp = np.diag(cm)
    union = cm.sum(axis=0) + cm.sum(axis=1) - tp
    per_class = {n: (_r(tp[i] / union[i]) if union[i] > 0 else None) for i, n in enumerate(names)}
    present = union > 0
    return {
        "miou": _r((tp[present] / union[present]).mean()),
        "per_class_iou": per_class,
        "pixel_accuracy": _r(tp.sum() / total),
    }


def miou_of_confusions(confusions: np.ndarray) -> np.ndarray:
    """mIoU of each of a stack of confusion matrices (B, C, C), rows = true, unrounded: IoU averaged
    over the classes present in truth or prediction, as :func:`segmentation_metrics` (NaN when empty).
    A stack of per-image matrices gives the per-image mean IoU."""
    cm = np.asarray(confusions, dtype=np.float64)
    tp = np.diagonal(cm, axis1=1, axis2=2)
    union = cm.sum(axis=1) + cm.sum(axis=2) - tp
    present = union > 0
    iou = np.divide(tp, union, out=np.zeros(tp.shape), where=present)
    n_present = present.sum(axis=1)
    return np.divide(iou.sum(axis=1), n_present, out=np.full(len(cm), np.nan), where=n_present > 0)
