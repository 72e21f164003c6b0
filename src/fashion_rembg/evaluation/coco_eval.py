"""COCO AP for instance segmentation (pycocotools `COCOeval`, `segm` and `bbox`), from in-memory
ground truth, plus the files that let anyone re-score a run with plain pycocotools.

`evaluate_coco` returns AP, AP50, AP75, AP small/medium/large and per-class AP for both IoU types.
COCOeval reports -1 where no ground-truth object falls in a size range (or class); those become
`None` (JSON null) — "not measurable here", not zero.

Per-image score (one number per test image; the run-health check counts the images it found
something on, and its mean is reported as `mean_segm_quality`; the CI of Δ segm AP resamples
COCOeval's per-image matches instead, `coco_resample`):
**segmentation quality at IoU 0.5** (the panoptic-quality form), from COCOeval's own matching:
`sum(IoU of matched pairs) / (TP + FP/2 + FN/2)`, counting predictions with score ≥ 0.5, crowd
regions ignored as COCOeval ignores them, 1.0 for an image with nothing to find and nothing
claimed. Why not per-image AP: AP is a ranking measure over the whole test set; on one image it is
undefined for classes the image lacks and then ignores false alarms of those classes. This score is
defined for every image and penalises misses, false alarms and poor masks. It is *not* AP.
"""
from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from ..atomic import atomic_file

__all__ = ["IOU_TYPES", "QUALITY_SCORE_THRESHOLD", "coco_from_dict", "evaluate_coco", "per_image_quality",
           "rescore", "write_coco_files"]

log = logging.getLogger(__name__)

IOU_TYPES = ("segm", "bbox")
SUMMARY_KEYS = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large")  # stats[0:6] of COCOeval
QUALITY_SCORE_THRESHOLD = 0.5
NULL_NOTE = "null: no ground-truth object of that size (or class) in the evaluated images"


@contextlib.contextmanager
def _quiet():
    """pycocotools prints progress to stdout; send it to the log instead."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        yield
    for line in buf.getvalue().splitlines():
        if line.strip():
            log.debug("pycocotools: %s", line)


def coco_from_dict(dataset: dict) -> COCO:
    """A pycocotools COCO object from an in-memory instances dict (no file)."""
    coco = COCO()
    coco.dataset = copy.deepcopy(dataset)
    with _quiet():
        coco.createIndex()
    return coco


def _results_for(predictions: list[dict], iou_type: str) -> list[dict]:
    """Standard COCO results of one IoU type: segm → segmentation (RLE counts str), bbox → bbox [x, y, w, h]."""
    out = []
    for p in predictions:
        row = {"image_id": int(p["image_id"]), "category_id": int(p["category_id"]), "score": float(p["score"])}
        if iou_type == "segm":
            seg = p["segmentation"]
            counts = seg["counts"]
            row["segmentation"] = {"size": [int(v) for v in seg["size"]],
                                   "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}
        else:
            row["bbox"] = [float(v) for v in p["bbox"]]
        out.append(row)
    return out


def _fresh(results: list[dict]) -> list[dict]:
    """Copies loadRes may write into (it adds id, area, bbox); the segmentations inside are only read,
    so a copy per dict is enough (a deepcopy of thousands of RLEs costs seconds per evaluation)."""
    return [dict(r) for r in results]


def _null(value: float) -> float | None:
    return None if value is None or value < 0 or not np.isfinite(value) else round(float(value), 6)


def _run(gt: COCO, results: list[dict], iou_type: str) -> tuple[dict, COCOeval | None]:
    if not results:  # loadRes refuses an empty list; no predictions = nothing found
        has_gt = any(not a.get("iscrowd", 0) for a in gt.dataset["annotations"])
        zero = 0.0 if has_gt else None
        # Per class as COCOeval would give it: 0 where the class has a (non-crowd) GT object, else null.
        with_gt = {a["category_id"] for a in gt.dataset["annotations"] if not a.get("iscrowd", 0)}
        per_class = {gt.cats[c]["name"]: 0.0 if c in with_gt else None for c in sorted(gt.cats)}
        return {**{k: zero for k in SUMMARY_KEYS}, "per_class": per_class}, None
    with _quiet():
        dt = gt.loadRes(_fresh(results))
        ev = COCOeval(gt, dt, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    metrics = {k: _null(v) for k, v in zip(SUMMARY_KEYS, ev.stats[:6])}
    precision = ev.eval["precision"]  # (T IoUs, R recalls, K classes, A areas, M maxDets)
    per_class = {}
    for k, cat in enumerate(ev.params.catIds):
        p = precision[:, :, k, 0, -1]
        p = p[p > -1]
        per_class[gt.cats[cat]["name"]] = round(float(p.mean()), 6) if p.size else None
    metrics["per_class"] = per_class
    return metrics, ev


def per_image_quality(gt: COCO, results: list[dict], image_ids, score_threshold: float = QUALITY_SCORE_THRESHOLD,
                      ev: COCOeval | None = None) -> np.ndarray:
    """Segmentation quality at IoU 0.5 per image (see module doc), in the order of `image_ids`."""
    image_ids = [int(i) for i in image_ids]
    if ev is None and results:
        with _quiet():
            ev = COCOeval(gt, gt.loadRes(_fresh(results)), "segm")
            ev.evaluate()
    iou_sum = dict.fromkeys(image_ids, 0.0)
    tp, fp, fn = (dict.fromkeys(image_ids, 0) for _ in range(3))
    if ev is not None:
        all_area = ev.params.areaRng[0]
        for e in ev.evalImgs:
            if e is None or e["aRng"] != all_area or e["image_id"] not in iou_sum:
                continue
            img = e["image_id"]
            matched_gt = set()
            for d, dt_id in enumerate(e["dtIds"]):
                if e["dtIgnore"][0, d] or e["dtScores"][d] < score_threshold:
                    continue
                gt_id = int(e["dtMatches"][0, d])
                if gt_id:
                    tp[img] += 1
                    matched_gt.add(gt_id)
                    iou_sum[img] += float(mask_utils.iou([ev.cocoDt.anns[dt_id]["segmentation"]],
                                                         [gt.anns[gt_id]["segmentation"]], [0])[0, 0])
                else:
                    fp[img] += 1
            fn[img] += sum(1 for g, ign in zip(e["gtIds"], e["gtIgnore"]) if not ign and g not in matched_gt)
    else:  # no predictions at all: every non-crowd object is missed
        for ann in gt.dataset["annotations"]:
            if not ann.get("iscrowd", 0) and ann["image_id"] in fn:
                fn[ann["image_id"]] += 1
    out = np.empty(len(image_ids), np.float64)
    for k, img in enumerate(image_ids):
        denom = tp[img] + 0.5 * (fp[img] + fn[img])
        out[k] = 1.0 if denom == 0 else iou_sum[img] / denom
    return out


def evaluate_coco(ground_truth: dict, predictions: list[dict], with_per_image: bool = True) -> dict:
    """COCO metrics for `segm` and `bbox`.

    `ground_truth`: COCO instances dict (e.g. `InstanceStore.coco_ground_truth`); `predictions`:
    dicts with image_id, category_id, score, segmentation (RLE at image size) and bbox [x, y, w, h].
    Returns `{"segm": {...}, "bbox": {...}, "note": ..., "per_image": {"image_ids", "segm_quality"}}`.
    """
    gt = coco_from_dict(ground_truth)
    out: dict = {"note": NULL_NOTE}
    segm_eval = None
    for iou_type in IOU_TYPES:
        out[iou_type], ev = _run(gt, _results_for(predictions, iou_type), iou_type)
        if iou_type == "segm":
            segm_eval = ev
    if with_per_image:
        ids = sorted(gt.getImgIds())
        quality = per_image_quality(gt, _results_for(predictions, "segm"), ids, ev=segm_eval)
        out["per_image"] = {"image_ids": ids, "segm_quality": [round(float(q), 6) for q in quality]}
    return out


def write_coco_files(out_dir: Path, ground_truth: dict, predictions: list[dict]) -> dict[str, Path]:
    """`ground_truth.json` and `results_{segm,bbox}.json` (standard COCO formats) in `out_dir`."""
    out_dir = Path(out_dir)
    paths = {"ground_truth": out_dir / "ground_truth.json"}
    files = {"ground_truth": ground_truth}
    for iou_type in IOU_TYPES:
        paths[iou_type] = out_dir / f"results_{iou_type}.json"
        files[iou_type] = _results_for(predictions, iou_type)
    for key, path in paths.items():
        with atomic_file(path) as tmp:
            tmp.write_text(json.dumps(files[key], separators=(",", ":"), sort_keys=True) + "\n")
    return paths


def rescore(gt_json: Path, results_json: Path, iou_type: str = "segm") -> dict:
    """Re-score a written results file against its ground truth with plain pycocotools (file based)."""
    with _quiet():
        gt = COCO(str(gt_json))
    results = json.loads(Path(results_json).read_text())
    return _run(gt, results, iou_type)[0]
