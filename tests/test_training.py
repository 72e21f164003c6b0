"""Training and cross-condition evaluation on tiny synthetic stores (CPU, one thread)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fashion_rembg.atomic import write_json
from fashion_rembg.evaluation.metrics import segmentation_metrics
from fashion_rembg.training.classification import evaluate_classifier, train_classifier
from fashion_rembg.training.data import IMAGENET_MEAN, IMAGENET_STD, BatchFeeder, load_store, to_tensor_batch
from fashion_rembg.training.loop import TrainConfig
from fashion_rembg.training.segmentation import evaluate_segmenter, train_segmenter

from training_helpers import (
    CLS_EXPERIMENT,
    SEG_EXPERIMENT,
    make_classification_store,
    make_segmentation_store,
    own_condition,
    train_and_evaluate_cls,
)

HISTORY_HEADER = ["epoch", "train_loss", "train_score", "val_loss", "val_score", "lr"]


def _read_history(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == HISTORY_HEADER
        return list(reader)


@pytest.fixture(scope="module")
def cls_store(tmp_path_factory) -> Path:
    return make_classification_store(tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="module")
def cls_run(cls_store, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("run") / "seed-1"
    return out, train_and_evaluate_cls(cls_store, out, seed=1)


# --------------------------------------------------------------------------- common helpers


def test_to_tensor_batch_normalises_channels_first():
    imgs = np.zeros((2, 4, 5, 3), dtype=np.uint8)
    imgs[0, 1, 2] = [255, 0, 128]
    x = to_tensor_batch(imgs)
    assert x.shape == (2, 3, 4, 5) and x.dtype == torch.float32
    expected = (np.array([255, 0, 128]) / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(x[0, :, 1, 2].numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(x[1, 0, 0, 0].item(), -IMAGENET_MEAN[0] / IMAGENET_STD[0], rtol=1e-5)
    with pytest.raises(ValueError, match="uint8"):
        to_tensor_batch(imgs.astype(np.float32))


def test_load_store_and_feeder(cls_store):
    store = load_store(cls_store)
    assert isinstance(store.images, np.memmap)
    assert store.task == "classification" and store.classes == ["red", "green", "blue"]
    assert store.classmaps is None and len(store.manifest) == store.images.shape[0] == 150
    labels = store.manifest["label_idx"].to_numpy()
    rows = store.manifest.loc[store.manifest["split"] == "val", "index"].to_numpy()
    feeder = BatchFeeder(store.images, labels, rows, batch_size=7, device=torch.device("cpu"))
    seen = []
    for x, y, r in feeder.batches():
        assert x.shape[1:] == (3, 32, 32) and x.is_contiguous()
        assert torch.equal(y, torch.as_tensor(labels[r]))
        torch.testing.assert_close(x, to_tensor_batch(store.images[r]))
        seen.extend(r.tolist())
    assert sorted(seen) == sorted(rows.tolist())
    # input_size resizes every batch; the prefetching path yields the same batches.
    small = BatchFeeder(store.images, labels, rows, batch_size=7, device=torch.device("cpu"), input_size=(16, 24))
    fetched = BatchFeeder(store.images, labels, rows, batch_size=7, device=torch.device("cpu"), prefetch=True)
    assert all(x.shape[1:] == (3, 16, 24) for x, _, _ in small.batches())
    for (xa, _, ra), (xb, _, rb) in zip(feeder.batches(), fetched.batches()):
        assert torch.equal(xa, xb) and np.array_equal(ra, rb)


def test_load_store_reports_bad_index(tmp_path, cls_store):
    d = tmp_path / "bad"
    d.mkdir()
    np.save(d / "images.npy", np.zeros((2, 8, 8, 3), np.uint8))
    (d / "manifest.tsv").write_text((cls_store / "manifest.tsv").read_text())
    with pytest.raises(ValueError, match="index"):
        load_store(d)


def test_write_json_sorted_and_stable(tmp_path):
    p = tmp_path / "sub" / "m.json"
    write_json(p, {"b": np.float32(0.5), "a": [np.int64(1)]})
    assert p.read_text() == '{\n  "a": [\n    1\n  ],\n  "b": 0.5\n}\n'
    assert [f.name for f in p.parent.iterdir()] == ["m.json"]  # no temp files left behind


def test_seed_everything_forces_deterministic_kernels_without_loading_inductor():
    # A fresh process: this one may have loaded inductor already (ONNX export does).
    code = """
import sys, torch
from fashion_rembg.training.loop import seed_everything, set_deterministic
seed_everything(0)
assert torch.are_deterministic_algorithms_enabled()
assert "torch._inductor" not in sys.modules, "inductor was imported"
import torch._inductor.config as inductor_config
set_deterministic(False)
assert not torch.are_deterministic_algorithms_enabled() and inductor_config.deterministic is False
set_deterministic(True)
assert torch.are_deterministic_algorithms_enabled() and inductor_config.deterministic is True
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]


def test_train_config_validates_axes():
    cfg = TrainConfig.from_experiment({**CLS_EXPERIMENT, "input_size": [24, 16], "schedule": "step"}, 0)
    assert cfg.input_size == (24, 16) and cfg.schedule == "step"
    for key, bad in [("schedule", "linear"), ("augment", "mixup"), ("optimizer", "lbfgs"), ("label_smoothing", 1.5)]:
        with pytest.raises(ValueError, match=key):
            TrainConfig.from_experiment({**CLS_EXPERIMENT, key: bad}, 0)


# --------------------------------------------------------------------------- classification


def test_classifier_learns_toy_task_and_writes_contract_files(cls_run):
    out, result = cls_run
    assert {p.name for p in out.iterdir()} == {"metrics.json", "history.csv", "model.pt", "predictions.npz"}
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == result
    assert set(on_disk) == {"experiment", "seed", "device", "classes", "metrics", "cross"}
    assert on_disk["experiment"] == CLS_EXPERIMENT and on_disk["seed"] == 1 and on_disk["device"] == "cpu"
    assert on_disk["classes"] == ["red", "green", "blue"]
    m = on_disk["metrics"]
    assert set(m) == {"top1", "top5", "macro_f1", "per_class_recall", "confusion_matrix", "best_epoch", "epochs_run",
                      "train_score"}
    assert m["top1"] > 0.8, m
    assert m["train_score"] > 0.8, m  # the kept model fits its training images (no augmentation)
    assert m["top5"] == 1.0  # k = min(5, 3) = 3 classes
    assert np.array(m["confusion_matrix"]).sum() == 30 and len(m["per_class_recall"]) == 3
    assert m["epochs_run"] == 4
    assert [c["key"] for c in on_disk["cross"]] == ["original"]
    assert {k: v for k, v in on_disk["cross"][0]["metrics"].items()} == {
        k: v for k, v in m.items() if k not in ("best_epoch", "epochs_run", "train_score")
    }

    hist = _read_history(out / "history.csv")
    assert [int(r["epoch"]) for r in hist] == [1, 2, 3, 4]
    lrs = [float(r["lr"]) for r in hist]
    assert lrs[0] == pytest.approx(0.01) and all(a > b for a, b in zip(lrs, lrs[1:]))  # cosine decay
    val = [float(r["val_score"]) for r in hist]
    assert m["best_epoch"] == int(np.argmax(val)) + 1  # first epoch with the best val accuracy

    pred = np.load(out / "predictions.npz")
    assert list(pred["conditions"]) == ["original"]
    assert pred["logits_original"].shape == (30, 3) and pred["labels"].shape == (30,)
    assert set(pred["ids"].tolist()) == {f"img{i:04d}" for i in range(120, 150)}
    top1 = (pred["logits_original"].argmax(1) == pred["labels"]).mean()
    assert top1 == pytest.approx(m["top1"], abs=1e-6)

    payload = torch.load(out / "model.pt", weights_only=True)
    assert payload["best_epoch"] == m["best_epoch"] and payload["epochs_run"] == 4
    assert any("running_mean" in k for k in payload["state_dict"])  # batch_norm=True model, best weights


def test_classifier_same_seed_byte_identical_other_seed_differs(cls_store, cls_run, tmp_path):
    out1, _ = cls_run
    train_and_evaluate_cls(cls_store, tmp_path / "again", seed=1)
    assert (tmp_path / "again" / "metrics.json").read_bytes() == (out1 / "metrics.json").read_bytes()
    assert (tmp_path / "again" / "history.csv").read_bytes() == (out1 / "history.csv").read_bytes()
    assert (tmp_path / "again" / "predictions.npz").read_bytes() == (out1 / "predictions.npz").read_bytes()
    train_and_evaluate_cls(cls_store, tmp_path / "other", seed=2)
    assert (tmp_path / "other" / "history.csv").read_bytes() != (out1 / "history.csv").read_bytes()


def test_cross_condition_evaluation_tests_every_condition(cls_store, cls_run, tmp_path):
    """A model trained on the original images, tested on them and on a washed-out copy."""
    out, _ = cls_run
    washed = tmp_path / "washed.npy"
    images = np.load(cls_store / "images.npy")
    np.save(washed, (images // 4 + 160).astype(np.uint8))  # colours nearly gone
    conditions = own_condition(cls_store / "images.npy") + [
        {"key": "rembg-x-white", "variant": "rembg", "sod": "x", "fill": "white", "images": str(washed)}
    ]
    result = evaluate_classifier(model=out / "model.pt", manifest=cls_store / "manifest.tsv",
                                 classes=cls_store / "classes.json", conditions=conditions,
                                 metrics_out=tmp_path / "m.json", predictions_out=tmp_path / "p.npz",
                                 experiment=CLS_EXPERIMENT, seed=1)  # fmt: skip
    own, other = result["cross"]
    assert (own["variant"], other["variant"], other["sod"], other["fill"]) == ("original", "rembg", "x", "white")
    assert result["metrics"]["top1"] == own["metrics"]["top1"] > other["metrics"]["top1"]
    pred = np.load(tmp_path / "p.npz")
    assert list(pred["conditions"]) == ["original", "rembg-x-white"]
    assert pred["logits_rembg-x-white"].shape == pred["logits_original"].shape
    bad = dict(conditions[1], images=str(tmp_path / "missing.npy"))
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        evaluate_classifier(model=out / "model.pt", manifest=cls_store / "manifest.tsv",
                            classes=cls_store / "classes.json", conditions=[conditions[0], bad],
                            metrics_out=tmp_path / "m2.json", predictions_out=tmp_path / "p2.npz",
                            experiment=CLS_EXPERIMENT, seed=1)  # fmt: skip
    assert not (tmp_path / "m2.json").exists()


def test_step_schedule_smoothing_dropout_input_size(cls_store, tmp_path):
    exp = {"schedule": "step", "label_smoothing": 0.2, "input_size": [24, 24], "epochs": 6, "optimizer": "sgd",
           "lr": 0.05, "dropout": 0.3, "augment": "crop_flip"}  # fmt: skip
    result = train_and_evaluate_cls(cls_store, tmp_path, seed=0, **exp)
    lrs = [float(r["lr"]) for r in _read_history(tmp_path / "history.csv")]
    # ÷10 after 50 % (epoch 3) and 75 % (ceil 4.5 = 5) of the epochs.
    assert lrs == pytest.approx([0.05, 0.05, 0.05, 0.005, 0.005, 0.0005])
    assert result["metrics"]["top1"] > 0.5


def test_early_stopping_keeps_best_epoch(cls_store, tmp_path):
    # lr so small nothing improves after epoch 1 (ties do not count), so patience 2 stops after epoch 3.
    result = train_and_evaluate_cls(cls_store, tmp_path, seed=0, lr=1e-9, early_stopping=2, epochs=8, augment="none",
                                    batch_norm=False)  # BN statistics would move even at lr 0
    payload = torch.load(tmp_path / "model.pt", weights_only=True)
    assert payload["stopped_early"] and payload["best_epoch"] == 1 and payload["epochs_run"] == 3
    assert len(_read_history(tmp_path / "history.csv")) == 3 and result["metrics"]["best_epoch"] == 1


def test_classifier_rejects_bad_experiment(cls_store, tmp_path):
    kwargs = dict(images=cls_store / "images.npy", manifest=cls_store / "manifest.tsv",
                  classes=cls_store / "classes.json", model_out=tmp_path / "model.pt",
                  history_out=tmp_path / "history.csv", seed=0)  # fmt: skip
    with pytest.raises(ValueError, match="missing key"):
        train_classifier(experiment={k: v for k, v in CLS_EXPERIMENT.items() if k != "lr"}, **kwargs)
    with pytest.raises(ValueError, match="optimizer"):
        train_classifier(experiment={**CLS_EXPERIMENT, "optimizer": "lbfgs"}, **kwargs)
    with pytest.raises(ValueError, match="unknown classifier arch"):
        train_classifier(experiment={**CLS_EXPERIMENT, "arch": "nope"}, **kwargs)
    assert not (tmp_path / "model.pt").exists()


# --------------------------------------------------------------------------- segmentation


def test_segmenter_trains_evaluates_and_writes_contract_files(tmp_path):
    store = make_segmentation_store(tmp_path)
    out = tmp_path / "run"
    exp = {**SEG_EXPERIMENT, "augment": "crop_flip"}
    train_segmenter(images=store / "images.npy", classmaps=store / "classmaps.npy", manifest=store / "manifest.tsv",
                    classes=store / "classes.json", model_out=out / "model.pt", history_out=out / "history.csv",
                    experiment=exp, seed=0)  # fmt: skip
    result = evaluate_segmenter(model=out / "model.pt", classmaps=store / "classmaps.npy",
                                manifest=store / "manifest.tsv", classes=store / "classes.json",
                                conditions=own_condition(store / "images.npy"), metrics_out=out / "metrics.json",
                                predictions_out=out / "predictions.npz", experiment=exp, seed=0)  # fmt: skip
    assert {p.name for p in out.iterdir()} == {"metrics.json", "history.csv", "model.pt", "predictions.npz"}
    pred = np.load(out / "predictions.npz")
    maps = pred["predictions_original"]
    assert maps.dtype == np.uint8 and maps.shape == (4, 64, 64) and maps.max() < 3
    # Per-image confusion matrices (for the image bootstrap) pool to the reported mIoU.
    truth = np.load(store / "classmaps.npy")[20:]  # the 4 test rows follow 16 train + 4 val
    confusions = pred["confusion_original"]
    assert confusions.shape == (4, 3, 3) and confusions.sum() == 4 * 64 * 64
    assert (confusions[:, np.arange(3), np.arange(3)].sum(1) == (maps == truth).sum((1, 2))).all()
    assert segmentation_metrics(confusions.sum(0), ["a", "b", "c"])["miou"] == pytest.approx(
        json.loads((out / "metrics.json").read_text())["metrics"]["miou"], abs=1e-6)
    for i, iou in enumerate(pred["iou_original"]):
        assert iou == pytest.approx(segmentation_metrics(confusions[i], ["a", "b", "c"])["miou"], abs=1e-6)
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == result and on_disk["classes"] == ["background", "top", "bag"]
    m = on_disk["metrics"]
    assert set(m) == {"miou", "per_class_iou", "pixel_accuracy", "best_epoch", "epochs_run", "train_score"}
    assert 0.0 < m["train_score"] <= 1.0  # mIoU of the kept model on its training images
    assert set(m["per_class_iou"]) == {"background", "top", "bag"}
    assert [c["key"] for c in on_disk["cross"]] == ["original"]


def test_imagenet_init_records_standin_weights_in_model_and_metrics(cls_store, tmp_path):
    from fashion_rembg.models.weights import weights_file, write_standin_weights

    write_standin_weights("resnet18", weights_file(tmp_path / "torch", "resnet18"))
    exp = {**CLS_EXPERIMENT, "arch": "resnet18", "init": "imagenet", "width": None, "blocks": None,
           "batch_norm": None, "epochs": 1}  # fmt: skip
    out = tmp_path / "run"
    train_classifier(images=cls_store / "images.npy", manifest=cls_store / "manifest.tsv",
                     classes=cls_store / "classes.json", model_out=out / "model.pt", history_out=out / "history.csv",
                     experiment=exp, seed=0, torch_home=tmp_path / "torch")  # fmt: skip
    want = {"arch": "resnet18", "file": "resnet18-f37072fd.pth", "published": False}
    assert torch.load(out / "model.pt", weights_only=True)["pretrained"] == want
    result = evaluate_classifier(model=out / "model.pt", manifest=cls_store / "manifest.tsv",
                                 classes=cls_store / "classes.json", conditions=own_condition(cls_store / "images.npy"),
                                 metrics_out=out / "metrics.json", predictions_out=out / "predictions.npz",
                                 experiment=exp, seed=0)  # fmt: skip
    assert result["pretrained"] == want == json.loads((out / "metrics.json").read_text())["pretrained"]
