"""Metric functions on hand-computed cases."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fashion_rembg.evaluation.metrics import classification_metrics, confusion_from_maps, segmentation_metrics


def test_classification_metrics_hand_computed():
    # 3 classes, 5 samples. argmax predictions: 0, 1, 1, 2, 0 ; labels: 0, 1, 2, 2, 1
    logits = np.array(
        [
            [3.0, 1.0, 0.0],
            [0.0, 2.0, 1.0],
            [0.5, 2.0, 1.0],  # true 2 is second-best
            [0.0, 0.1, 4.0],
            [2.0, 0.0, 1.0],  # true 1 is last
        ]
    )
    labels = np.array([0, 1, 2, 2, 1])
    m = classification_metrics(logits, labels, 3)
    assert m["top1"] == 0.6
    assert m["top5"] == 1.0  # k = min(5, 3) = 3: every label is in the top 3
    assert m["confusion_matrix"] == [[1, 0, 0], [1, 1, 0], [0, 1, 1]]
    assert m["per_class_recall"] == [1.0, 0.5, 0.5]
    # F1 per class: c0 2/(2+1)=0.667 (tp1 fp1 fn0), c1 2/(2+1+1)=0.5, c2 2/(2+0+1)=0.667
    assert m["macro_f1"] == round((2 / 3 + 0.5 + 2 / 3) / 3, 6)
    json.dumps(m)  # plain python types only


def test_topk_with_more_than_five_classes():
    logits = np.tile(np.arange(7, dtype=float), (2, 1))  # class 6 best, class 0 worst
    m = classification_metrics(logits, np.array([2, 1]), 7)
    assert m["top1"] == 0.0
    assert m["top5"] == 0.5  # top-5 = classes 6..2, so label 2 hits and label 1 misses


def test_absent_classes_are_none_and_excluded_from_macro_f1():
    logits = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    m = classification_metrics(logits, np.array([0, 1]), 4)
    assert m["per_class_recall"] == [1.0, 1.0, None, None]
    assert m["macro_f1"] == 1.0  # classes 2 and 3 never occur, so they do not drag F1 to 0.5
    assert m["top5"] == 1.0


def test_classification_metrics_rounds_and_validates():
    rng = np.random.default_rng(0)
    m = classification_metrics(rng.normal(size=(7, 3)), rng.integers(0, 3, 7), 3)
    for key in ("top1", "top5", "macro_f1"):
        assert m[key] == round(m[key], 6)
    with pytest.raises(ValueError, match="shape"):
        classification_metrics(np.zeros((2, 3)), np.array([0, 1]), 4)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        classification_metrics(np.zeros((2, 3)), np.array([0, 3]), 3)
    with pytest.raises(ValueError, match="no samples"):
        classification_metrics(np.zeros((0, 3)), np.zeros(0, int), 3)


def test_confusion_from_maps_rows_are_truth():
    target = np.array([[0, 0, 1], [1, 2, 2]])
    pred = np.array([[0, 1, 1], [1, 2, 0]])
    cm = confusion_from_maps(pred, target, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert cm.sum() == target.size
    with pytest.raises(ValueError, match="shapes differ"):
        confusion_from_maps(pred[:1], target, 3)
    with pytest.raises(ValueError, match="pred"):
        confusion_from_maps(pred + 3, target, 3)


def test_segmentation_metrics_hand_computed_and_ignores_absent():
    # classes: background, top, bag, shoe (shoe never in truth nor prediction)
    cm = np.array(
        [
            [6, 1, 0, 0],
            [1, 2, 0, 0],
            [0, 0, 0, 0],  # bag absent from truth ...
            [0, 0, 0, 0],
        ]
    )
    cm[0, 2] = 1  # ... but predicted once: IoU 0, still counted
    m = segmentation_metrics(cm, ["background", "top", "bag", "shoe"])
    # IoU background 6/(8+7-6)=2/3, top 2/(3+3-2)=0.5, bag 0/(0+1-0)=0, shoe absent
    assert m["per_class_iou"] == {"background": 0.666667, "top": 0.5, "bag": 0.0, "shoe": None}
    assert m["miou"] == round((2 / 3 + 0.5 + 0.0) / 3, 6)
    assert m["pixel_accuracy"] == round(8 / 11, 6)
    json.dumps(m)


def test_segmentation_metrics_validates():
    with pytest.raises(ValueError, match="class names"):
        segmentation_metrics(np.eye(3), ["a", "b"])
    with pytest.raises(ValueError, match="empty"):
        segmentation_metrics(np.zeros((2, 2)), ["a", "b"])


def test_oracle_masks_are_the_true_masks(tmp_path):
    from fashion_rembg.evaluation.oracle import write_oracle_masks

    truth = (np.random.default_rng(0).random((3, 8, 6)) > 0.5).astype(np.uint8) * 255
    np.save(tmp_path / "truth.npy", truth)
    out = write_oracle_masks(tmp_path / "truth.npy", tmp_path / "oracle" / "masks.npy")
    assert np.array_equal(np.load(out), truth) and sorted(p.name for p in out.parent.iterdir()) == ["masks.npy"]
    np.save(tmp_path / "bad.npy", truth.astype(np.float32))
    with pytest.raises(ValueError, match="bad.npy"):
        write_oracle_masks(tmp_path / "bad.npy", tmp_path / "x.npy")
