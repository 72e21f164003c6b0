"""COCO evaluation on a hand-checked tiny case: perfect = AP 1.0, shifted lower, crowd ignored,
re-scoring the written JSON files gives the same AP, per-image quality."""
import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from fashion_rembg.evaluation.coco_eval import (
    coco_from_dict,
    evaluate_coco,
    per_image_quality,
    rescore,
    write_coco_files,
)

H, W = 64, 64


def rle(y0, y1, x0, x1):
    m = np.zeros((H, W), np.uint8)
    m[y0:y1, x0:x1] = 1
    r = mask_utils.encode(np.asfortranarray(m))
    return {"size": [H, W], "counts": r["counts"].decode()}


def gt_dataset():
    boxes = {1: [(4, 28, 4, 28, 1), (30, 60, 30, 60, 2)], 2: [(10, 50, 10, 40, 1)]}
    images = [{"id": i, "width": W, "height": H, "file_name": f"{i}.jpg"} for i in (1, 2, 3)]
    anns = []
    for img, objs in boxes.items():
        for y0, y1, x0, x1, cat in objs:
            anns.append({"id": len(anns) + 1, "image_id": img, "category_id": cat, "iscrowd": 0,
                         "segmentation": rle(y0, y1, x0, x1), "area": (y1 - y0) * (x1 - x0),
                         "bbox": [x0, y0, x1 - x0, y1 - y0]})
    # image 3: a crowd region only
    anns.append({"id": 99, "image_id": 3, "category_id": 2, "iscrowd": 1, "segmentation": rle(0, 64, 0, 32),
                 "area": 2048, "bbox": [0, 0, 32, 64]})
    return {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "top"}, {"id": 2, "name": "bag"}]}


def predictions_from(gt, shift=0, score=0.9):
    out = []
    for a in gt["annotations"]:
        if a["iscrowd"]:
            continue
        x, y, w, h = a["bbox"]
        out.append({"image_id": a["image_id"], "category_id": a["category_id"], "score": score,
                    "segmentation": rle(y, y + h, min(x + shift, W - 1), min(x + w + shift, W)),
                    "bbox": [min(x + shift, W - 1), y, w, h]})
    return out


def test_perfect_prediction_scores_one_and_sizes_without_objects_are_null():
    gt = gt_dataset()
    m = evaluate_coco(gt, predictions_from(gt))
    for iou_type in ("segm", "bbox"):
        assert m[iou_type]["AP"] == pytest.approx(1.0)
        assert m[iou_type]["AP50"] == pytest.approx(1.0) and m[iou_type]["AP75"] == pytest.approx(1.0)
        # Areas 576, 900 (small, < 32²) and 1200 (medium); no large object (> 96²): null, not 0.
        assert m[iou_type]["AP_small"] == pytest.approx(1.0) and m[iou_type]["AP_medium"] == pytest.approx(1.0)
        assert m[iou_type]["AP_large"] is None
        assert m[iou_type]["per_class"] == {"top": pytest.approx(1.0), "bag": pytest.approx(1.0)}
    assert m["per_image"]["image_ids"] == [1, 2, 3]
    assert m["per_image"]["segm_quality"] == [1.0, 1.0, 1.0]
    json.dumps(m, allow_nan=False)


def test_shifted_prediction_scores_lower():
    gt = gt_dataset()
    perfect = evaluate_coco(gt, predictions_from(gt))
    shifted = evaluate_coco(gt, predictions_from(gt, shift=6))
    assert shifted["segm"]["AP"] < perfect["segm"]["AP"]
    assert shifted["bbox"]["AP"] < perfect["bbox"]["AP"]
    assert shifted["segm"]["AP50"] == pytest.approx(1.0)  # IoU ≥ 0.5 still holds at a 6-pixel shift
    q = shifted["per_image"]["segm_quality"]
    assert 0.5 < q[0] < 1.0 and 0.5 < q[1] < 1.0 and q[2] == 1.0


def test_crowd_ground_truth_is_ignored():
    gt = gt_dataset()
    preds = predictions_from(gt)
    # A detection on the crowd region neither counts as a hit nor as a false alarm.
    preds.append({"image_id": 3, "category_id": 2, "score": 0.95, "segmentation": rle(0, 64, 0, 32),
                  "bbox": [0, 0, 32, 64]})
    m = evaluate_coco(gt, preds)
    assert m["segm"]["AP"] == pytest.approx(1.0)
    assert m["per_image"]["segm_quality"][2] == 1.0
    # The same detection where no crowd is: a false alarm, AP drops.
    preds[-1] = {**preds[-1], "image_id": 1}
    assert evaluate_coco(gt, preds)["segm"]["AP"] < 1.0


def test_missing_and_false_detections_lower_per_image_quality():
    gt = gt_dataset()
    preds = [p for p in predictions_from(gt) if p["image_id"] != 2]
    preds.append({"image_id": 1, "category_id": 2, "score": 0.3, "segmentation": rle(0, 4, 0, 4), "bbox": [0, 0, 4, 4]})
    q = per_image_quality(coco_from_dict(gt), preds, [1, 2, 3])
    assert q.tolist() == [1.0, 0.0, 1.0]  # low-score false alarm not counted; image 2's object missed
    assert evaluate_coco(gt, [])["segm"]["AP"] == 0.0
    assert evaluate_coco(gt, [])["per_image"]["segm_quality"] == [0.0, 0.0, 1.0]


def test_rescore_from_written_json_gives_same_ap(tmp_path):
    gt = gt_dataset()
    preds = predictions_from(gt, shift=4)
    preds[0]["score"] = 0.4
    m = evaluate_coco(gt, preds)
    paths = write_coco_files(tmp_path, gt, preds)
    results = json.loads(paths["segm"].read_text())
    assert isinstance(results[0]["segmentation"]["counts"], str) and "bbox" not in results[0]
    for iou_type in ("segm", "bbox"):
        again = rescore(paths["ground_truth"], paths[iou_type], iou_type)
        assert again == {k: v for k, v in m[iou_type].items()}
