"""COCO AP of resampled test sets, without re-running COCOeval per resample.

COCOeval matches detections to objects image by image (`evaluate`) and only then pools the matches
over images to rank them by score (`accumulate`). So the AP of a test set in which image i appears
w_i times (a bootstrap resample) or comes from another run (a permutation swap) needs only the
per-image matches: pool them once per class in COCOeval's score order, then weight each detection by
its image's count in cumulative TP / FP sums and each image's objects in the object count. With all
weights 1 this is `accumulate` + `summarize`'s AP (area "all", the largest maxDets, precision at
COCO's 101 recall points averaged over the IoU thresholds and the classes with objects); a weight
of 2 gives the AP of the test set with that image duplicated next to itself (its detections tie with
their copies, and a tie of equal increments does not change the interpolated precision at any recall
point) — exactly, unless two detections of one class in one image share a score: COCOeval would
interleave the copies, the weights keep each detection's copies together. `tests/test_coco_resample.py`
checks both against COCOeval.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval, Params

from .coco_eval import _fresh, _quiet

__all__ = ["ApMatches", "ap_matches", "check_same_test_set", "pooled_ap"]

_EPS = np.spacing(1)  # COCOeval's guard in tp / (tp + fp)
_MAX_CELLS = 8_000_000  # resamples × IoU thresholds × detections per block (bounds memory)


@dataclass(frozen=True)
class ApMatches:
    """One run's COCOeval matches on its test images, per class with objects or detections.

    ``det_image[k]`` (D_k,): the image index (into ``image_ids``) of each detection of class k in
    COCOeval's ranking (score descending, stable); ``det_tp[k]`` / ``det_fp[k]`` (T, D_k): matched /
    unmatched and not ignored, per IoU threshold; ``objects`` (K, N): non-ignored objects per class
    and image. Detections are those COCOeval keeps (the top ``maxDets[-1]`` per image and class).
    """

    image_ids: np.ndarray
    category_ids: np.ndarray
    objects: np.ndarray
    det_image: tuple
    det_score: tuple
    det_tp: tuple
    det_fp: tuple
    rec_thrs: np.ndarray


def ap_matches(gt: COCO, results: list[dict], image_ids, iou_type: str = "segm") -> ApMatches:
    """COCOeval's per-image matches of ``results`` on ``image_ids`` (all of gt's classes), images in
    ascending id order (COCOeval's own: its evalImgs are indexed by the sorted ids)."""
    image_ids = np.unique(np.asarray([int(i) for i in image_ids], dtype=np.int64))
    cat_ids = np.asarray(sorted(gt.getCatIds()), dtype=np.int64)
    n, k_all = len(image_ids), len(cat_ids)
    objects = np.zeros((k_all, n), dtype=np.float64)
    if not results:  # loadRes refuses an empty list; no detections: only the objects count
        params = Params(iou_type)
        position = {int(i): p for p, i in enumerate(image_ids)}
        for ann in gt.dataset["annotations"]:
            if not ann.get("iscrowd", 0) and int(ann["image_id"]) in position:
                objects[np.searchsorted(cat_ids, ann["category_id"]), position[int(ann["image_id"])]] += 1
        no_flags = tuple(np.zeros((len(params.iouThrs), 0), bool) for _ in cat_ids)
        return ApMatches(image_ids, cat_ids, objects, tuple(np.zeros(0, np.int64) for _ in cat_ids),
                         tuple(np.zeros(0) for _ in cat_ids), no_flags, no_flags,
                         np.asarray(params.recThrs, dtype=np.float64))  # fmt: skip
    with _quiet():
        ev = COCOeval(gt, gt.loadRes(_fresh(results)), iou_type)
        ev.params.imgIds = [int(i) for i in image_ids]
        ev.params.catIds = [int(c) for c in cat_ids]
        ev.evaluate()
    p = ev.params
    max_det, n_area, t = p.maxDets[-1], len(p.areaRng), len(p.iouThrs)
    det_image, det_score, det_tp, det_fp = [], [], [], []
    for k in range(k_all):
        # evalImgs is ordered class × area range × image; area range 0 is "all".
        entries = [(i, ev.evalImgs[k * n_area * n + i]) for i in range(n)]
        entries = [(i, e) for i, e in entries if e is not None]
        for i, e in entries:
            objects[k, i] = np.count_nonzero(np.asarray(e["gtIgnore"]) == 0)
        if not entries:
            det_image.append(np.zeros(0, np.int64))
            det_score.append(np.zeros(0))
            det_tp.append(np.zeros((t, 0), bool))
            det_fp.append(np.zeros((t, 0), bool))
            continue
        scores = np.concatenate([np.asarray(e["dtScores"][:max_det], dtype=np.float64) for _, e in entries])
        images = np.concatenate([np.full(len(e["dtScores"][:max_det]), i, np.int64) for i, e in entries])
        matched = np.concatenate([np.asarray(e["dtMatches"][:, :max_det]) for _, e in entries], axis=1)
        ignored = np.concatenate([np.asarray(e["dtIgnore"][:, :max_det]) for _, e in entries], axis=1)
        order = np.argsort(-scores, kind="mergesort")  # COCOeval.accumulate's ranking
        matched, ignored = matched[:, order].astype(bool), ignored[:, order].astype(bool)
        det_image.append(images[order])
        det_score.append(scores[order])
        det_tp.append(matched & ~ignored)
        det_fp.append(~matched & ~ignored)
    return ApMatches(image_ids, cat_ids, objects, tuple(det_image), tuple(det_score), tuple(det_tp), tuple(det_fp),
                     np.asarray(p.recThrs, dtype=np.float64))


def _running(rows: np.ndarray, op, reverse: bool = False) -> np.ndarray:
    """``op``-accumulate along the first axis in place, one row at a time: for a (D, M) array with
    large M this is ~10× faster than ``np.cumsum(axis=0)`` (measured, numpy 2)."""
    order = range(len(rows) - 2, -1, -1) if reverse else range(1, len(rows))
    step = 1 if reverse else -1
    for i in order:
        op(rows[i], rows[i + step], out=rows[i])
    return rows


def _class_precision(tp: np.ndarray, fp: np.ndarray, weights: np.ndarray, n_objects: np.ndarray,
                     rec_thrs: np.ndarray) -> np.ndarray:
    """Mean interpolated precision over IoU thresholds × recall points of one class, (B,): ``weights``
    (B, D) per detection, ``n_objects`` (B,) > 0 weighted object counts.

    The (D, B × T) arrays are what costs time: detections run along the first axis, so the running
    sums and the envelope add whole rows, in place."""
    b, d = weights.shape
    t, r = tp.shape[0], len(rec_thrs)
    if d == 0:
        return np.zeros(b)
    rows = b * t
    w = np.ascontiguousarray(weights.T)[:, :, None]  # (D, B, 1)
    tps = _running(np.multiply(w, tp.T[:, None, :]).reshape(d, rows), np.add)  # in the dtype of weights
    fps = _running(np.multiply(w, fp.T[:, None, :]).reshape(d, rows), np.add)
    # Recall in float64 as COCOeval computes it (integer-valued weights keep float32 sums exact).
    recall = (tps.reshape(d, b, t) / np.asarray(n_objects, dtype=np.float64)[None, :, None]).reshape(d, rows)
    fps += tps
    fps += _EPS
    precision = _running(np.divide(tps, fps, out=fps), np.maximum, reverse=True)  # COCO's envelope
    # COCOeval takes, per recall point, the first detection whose recall reaches it. Each detection's
    # recall becomes the number of recall points it reaches (exact comparisons); those counts never
    # fall along a row, so offsetting row j by j·(R+1) sorts all B × T rows into one array to search.
    reaches = np.searchsorted(rec_thrs, recall.T, side="right")  # (rows, D)
    offsets = np.arange(rows) * (r + 1)
    reaches += offsets[:, None]
    found = np.searchsorted(reaches.ravel(), (np.arange(1, r + 1)[None, :] + offsets[:, None]).ravel(), side="left")
    found = found.reshape(rows, r) - (np.arange(rows) * d)[:, None]
    reached = found < d  # past the row's last detection: that recall is never reached, precision 0
    picked = precision[np.minimum(found, d - 1), np.arange(rows)[:, None]]
    return np.where(reached, picked, 0.0).reshape(b, t * r).mean(axis=1)


def check_same_test_set(runs: Sequence[ApMatches]) -> None:
    """ValueError unless all runs were scored on the same images, classes and objects."""
    ref = runs[0]
    for other in runs[1:]:
        if not (np.array_equal(other.image_ids, ref.image_ids) and np.array_equal(other.category_ids,
                                                                                ref.category_ids)):
            raise ValueError("runs were scored on different images or classes")
        if not np.array_equal(other.objects, ref.objects):
            raise ValueError("runs have different ground truth on the same images")


def pooled_ap(runs: Sequence[ApMatches], run_weights: Sequence[np.ndarray], image_weights: np.ndarray,
              dtype=np.float64) -> np.ndarray:
    """AP (B,) of test sets pooled from ``runs`` (same images and classes, :func:`check_same_test_set`).

    ``image_weights`` (B, N): how often each image is in the test set (its objects count that often);
    ``run_weights[r]`` (B, N): how often run r's detections of each image count (``image_weights``
    itself for one run; for two runs, a swap mask and its complement). NaN where no class has an
    object. ``dtype`` float32 halves the time of resampling (precision to ~1e-6).
    """
    check_same_test_set(runs)
    ref = runs[0]
    image_weights = np.asarray(image_weights, dtype=np.float64)
    b = image_weights.shape[0]
    total = np.zeros(b)
    counted = np.zeros(b)
    for k in range(len(ref.category_ids)):
        n_objects = image_weights @ ref.objects[k]  # (B,)
        present = n_objects > 0
        if not present.any():
            continue
        scores = np.concatenate([r.det_score[k] for r in runs])
        tp = np.concatenate([r.det_tp[k] for r in runs], axis=1).astype(dtype)
        fp = np.concatenate([r.det_fp[k] for r in runs], axis=1).astype(dtype)
        weights = np.concatenate([w[:, r.det_image[k]] for w, r in zip(run_weights, runs)], axis=1)
        weights = weights.astype(dtype, copy=False)
        # COCOeval's ranking of the pooled set: score, ties by image, then each run's own order. Within
        # an image only one run's detections weigh (a swap moves whole images), so their order is moot.
        images = np.concatenate([r.det_image[k] for r in runs])
        position = np.concatenate([np.arange(len(r.det_image[k])) for r in runs])
        order = np.lexsort((position, images, -scores))
        tp, fp, weights = tp[:, order], fp[:, order], weights[:, order]
        ap = np.zeros(b)
        step = max(1, _MAX_CELLS // max(1, tp.shape[0] * tp.shape[1]))
        for start in range(0, b, step):
            block = slice(start, start + step)
            objects = np.where(present[block], n_objects[block], 1.0)
            ap[block] = _class_precision(tp, fp, weights[block], objects, ref.rec_thrs)
        total += np.where(present, ap, 0.0)
        counted += present
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counted > 0, total / np.maximum(counted, 1), np.nan)
