"""Training loops on tiny synthetic stores (CPU, one thread)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from fashion_rembg.training.classification import train_classifier
from fashion_rembg.training.common import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    BatchFeeder,
    augment_batch,
    epoch_generator,
    load_store,
    seed_everything,
    to_tensor_batch,
    write_json_atomic,
)
from fashion_rembg.training.segmentation import train_segmenter

HISTORY_HEADER = ["epoch", "train_loss", "train_score", "val_loss", "val_score", "lr"]
COLOURS = np.array([[220, 30, 30], [30, 200, 40], [40, 60, 230]], dtype=np.uint8)


def _write_manifest(path: Path, splits: list[str], labels: list[int], names: list[str] | None) -> None:
    rows = []
    for i, (split, lab) in enumerate(zip(splits, labels)):
        rows.append(
            {
                "index": i,
                "id": f"img{i:04d}",
                "source": f"raw/img{i:04d}.jpg",
                "split": split,
                "label": names[lab] if names else "",
                "label_idx": lab,
                "note": "",
            }
        )
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)


def make_classification_store(root: Path, per_split=(30, 10, 10), size=32, seed=0) -> Path:
    """3 classes: a red / green / blue blob at a random place on a noisy grey background."""
    rng = np.random.default_rng(seed)
    names = ["red", "green", "blue"]
    splits, labels, images = [], [], []
    for split, n in zip(("train", "val", "test"), per_split):
        for k in range(n * 3):
            lab = k % 3
            img = rng.integers(90, 160, size=(size, size, 3), dtype=np.uint8)
            s = int(rng.integers(8, 14))
            y0, x0 = rng.integers(0, size - s, size=2)
            img[y0 : y0 + s, x0 : x0 + s] = COLOURS[lab]
            images.append(img)
            splits.append(split)
            labels.append(lab)
    d = root / "cls"
    d.mkdir(parents=True)
    np.save(d / "images.npy", np.stack(images))
    _write_manifest(d / "manifest.tsv", splits, labels, names)
    (d / "classes.json").write_text(json.dumps({"task": "classification", "classes": names}))
    return d


def make_segmentation_store(root: Path, per_split=(16, 4, 4), size=64, seed=0) -> Path:
    """Background + 2 classes: a red and a blue rectangle per image, class map marks them."""
    rng = np.random.default_rng(seed)
    splits, images, maps = [], [], []
    for split, n in zip(("train", "val", "test"), per_split):
        for _ in range(n):
            img = rng.integers(100, 150, size=(size, size, 3), dtype=np.uint8)
            cm = np.zeros((size, size), dtype=np.uint8)
            for cls, colour in ((1, COLOURS[0]), (2, COLOURS[2])):
                h, w = rng.integers(12, 28, size=2)
                y0, x0 = rng.integers(0, size - h), rng.integers(0, size - w)
                img[y0 : y0 + h, x0 : x0 + w] = colour
                cm[y0 : y0 + h, x0 : x0 + w] = cls
            images.append(img)
            maps.append(cm)
            splits.append(split)
    d = root / "seg"
    d.mkdir(parents=True)
    np.save(d / "images.npy", np.stack(images))
    np.save(d / "classmaps.npy", np.stack(maps))
    _write_manifest(d / "manifest.tsv", splits, [-1] * len(splits), None)
    (d / "classes.json").write_text(json.dumps({"task": "segmentation", "classes": ["background", "top", "bag"]}))
    return d


CLS_EXPERIMENT = {
    "id": "toy-shallow",
    "task": "classification",
    "dataset": "toy",
    "arch": "shallow_cnn",
    "variant": "original",
    "sod": "none",
    "fill": "none",
    "epochs": 4,
    "batch_size": 16,
    "lr": 0.01,
    "optimizer": "adamw",
    "weight_decay": 0.0,
    "augment": "flip",
    "width": 8,
    "blocks": 2,
    "batch_norm": True,
    "dropout": 0.0,
}

SEG_EXPERIMENT = {
    "id": "toy-unet",
    "task": "segmentation",
    "dataset": "toyseg",
    "arch": "unet",
    "encoder": "resnet18",
    "variant": "original",
    "epochs": 3,
    "batch_size": 2,
    "lr": 0.001,
    "optimizer": "adamw",
    "weight_decay": 0.0,
    "augment": "flip",
}


def _train_cls(store: Path, out: Path, seed: int, **overrides) -> dict:
    return train_classifier(
        images=store / "images.npy",
        manifest=store / "manifest.tsv",
        classes=store / "classes.json",
        out_dir=out,
        experiment={**CLS_EXPERIMENT, **overrides},
        seed=seed,
        threads=1,
    )


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
    return out, _train_cls(cls_store, out, seed=1)


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


def test_flip_augmentation_is_per_sample_seeded_and_moves_maps_too():
    imgs = torch.arange(16 * 2 * 3 * 3, dtype=torch.int64).remainder(256).to(torch.uint8).view(16, 2, 3, 3)
    maps = torch.arange(16 * 2 * 3, dtype=torch.int64).remainder(256).to(torch.uint8).view(16, 2, 3)
    a, am = augment_batch(imgs, maps, mode="flip", generator=epoch_generator(7, 1))
    b, bm = augment_batch(imgs, maps, mode="flip", generator=epoch_generator(7, 1))
    assert torch.equal(a, b) and torch.equal(am, bm)
    flipped = [not torch.equal(a[i], imgs[i]) for i in range(16)]
    assert 0 < sum(flipped) < 16  # per sample, not all-or-nothing
    for i in range(16):
        want = imgs[i].flip(1) if flipped[i] else imgs[i]  # W axis of (H, W, C)
        want_map = maps[i].flip(1) if flipped[i] else maps[i]
        assert torch.equal(a[i], want) and torch.equal(am[i], want_map)
    c, _ = augment_batch(imgs, None, mode="flip", generator=epoch_generator(7, 2))
    assert not torch.equal(a, c)  # another epoch, another draw
    n, nm = augment_batch(imgs, maps, mode="none")
    assert n is imgs and nm is maps
    with pytest.raises(ValueError, match="augment"):
        augment_batch(imgs, mode="rotate")


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
        assert x.shape[1:] == (3, 32, 32)
        assert torch.equal(y, torch.as_tensor(labels[r]))
        torch.testing.assert_close(x, to_tensor_batch(store.images[r]))
        seen.extend(r.tolist())
    assert sorted(seen) == sorted(rows.tolist())


def test_load_store_reports_bad_index(tmp_path, cls_store):
    d = tmp_path / "bad"
    d.mkdir()
    np.save(d / "images.npy", np.zeros((2, 8, 8, 3), np.uint8))
    (d / "manifest.tsv").write_text((cls_store / "manifest.tsv").read_text())
    with pytest.raises(ValueError, match="index"):
        load_store(d)


def test_write_json_atomic_sorted_and_stable(tmp_path):
    p = tmp_path / "sub" / "m.json"
    write_json_atomic(p, {"b": np.float32(0.5), "a": [np.int64(1)]})
    text = p.read_text()
    assert text == '{\n  "a": [\n    1\n  ],\n  "b": 0.5\n}\n'
    assert [f.name for f in p.parent.iterdir()] == ["m.json"]  # no temp files left behind


# --------------------------------------------------------------------------- classification


def test_classifier_learns_toy_task_and_writes_contract_files(cls_run):
    out, result = cls_run
    assert {p.name for p in out.iterdir()} == {"metrics.json", "history.csv", "model.pt", "predictions.npz"}
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == result
    assert set(on_disk) == {"experiment", "seed", "device", "classes", "metrics"}
    assert on_disk["experiment"] == CLS_EXPERIMENT and on_disk["seed"] == 1 and on_disk["device"] == "cpu"
    assert on_disk["classes"] == ["red", "green", "blue"]
    m = on_disk["metrics"]
    assert set(m) == {"top1", "top5", "macro_f1", "per_class_recall", "confusion_matrix", "best_epoch"}
    assert m["top1"] > 0.8, m
    assert m["top5"] == 1.0  # k = min(5, 3) = 3 classes
    assert np.array(m["confusion_matrix"]).sum() == 30 and len(m["per_class_recall"]) == 3

    hist = _read_history(out / "history.csv")
    assert [int(r["epoch"]) for r in hist] == [1, 2, 3, 4]
    lrs = [float(r["lr"]) for r in hist]
    assert lrs[0] == pytest.approx(0.01) and all(a > b for a, b in zip(lrs, lrs[1:]))  # cosine decay
    val = [float(r["val_score"]) for r in hist]
    assert m["best_epoch"] == int(np.argmax(val)) + 1  # first epoch with the best val accuracy

    pred = np.load(out / "predictions.npz")
    assert pred["logits"].shape == (30, 3) and pred["labels"].shape == (30,)
    assert set(pred["ids"].tolist()) == {f"img{i:04d}" for i in range(120, 150)}
    top1 = (pred["logits"].argmax(1) == pred["labels"]).mean()
    assert top1 == pytest.approx(m["top1"], abs=1e-6)

    state = torch.load(out / "model.pt", weights_only=True)
    assert any("running_mean" in k for k in state)  # batch_norm=True model, best weights


def test_classifier_same_seed_byte_identical_other_seed_differs(cls_store, cls_run, tmp_path):
    out1, _ = cls_run
    _train_cls(cls_store, tmp_path / "again", seed=1)
    assert (tmp_path / "again" / "metrics.json").read_bytes() == (out1 / "metrics.json").read_bytes()
    assert (tmp_path / "again" / "history.csv").read_bytes() == (out1 / "history.csv").read_bytes()
    _train_cls(cls_store, tmp_path / "other", seed=2)
    assert (tmp_path / "other" / "history.csv").read_bytes() != (out1 / "history.csv").read_bytes()


def test_classifier_rejects_bad_experiment(cls_store, tmp_path):
    with pytest.raises(ValueError, match="missing key"):
        exp = {k: v for k, v in CLS_EXPERIMENT.items() if k != "lr"}
        train_classifier(
            images=cls_store / "images.npy", manifest=cls_store / "manifest.tsv",
            classes=cls_store / "classes.json", out_dir=tmp_path, experiment=exp, seed=0,
        )  # fmt: skip
    with pytest.raises(ValueError, match="optimizer"):
        _train_cls(cls_store, tmp_path, seed=0, optimizer="lbfgs")
    with pytest.raises(ValueError, match="unknown classifier arch"):
        _train_cls(cls_store, tmp_path, seed=0, arch="nope")
    assert not (tmp_path / "metrics.json").exists()


# --------------------------------------------------------------------------- segmentation


def test_segmenter_trains_and_writes_contract_files(tmp_path):
    store = make_segmentation_store(tmp_path)
    out = tmp_path / "run"
    result = train_segmenter(
        images=store / "images.npy",
        classmaps=store / "classmaps.npy",
        manifest=store / "manifest.tsv",
        classes=store / "classes.json",
        out_dir=out,
        experiment=SEG_EXPERIMENT,
        seed=0,
        threads=1,
    )
    assert {p.name for p in out.iterdir()} == {"metrics.json", "history.csv", "model.pt", "predictions.npz"}
    pred = np.load(out / "predictions.npz")
    assert pred["predictions"].dtype == np.uint8 and pred["predictions"].shape[0] == len(pred["ids"])
    assert pred["predictions"].max() < 3
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == result and on_disk["classes"] == ["background", "top", "bag"]
    m = on_disk["metrics"]
    assert set(m) == {"miou", "per_class_iou", "pixel_accuracy", "best_epoch"}
    assert set(m["per_class_iou"]) == {"background", "top", "bag"}
    present = [v for v in m["per_class_iou"].values() if v is not None]
    assert m["miou"] == pytest.approx(np.mean(present), abs=1e-5)

    hist = _read_history(out / "history.csv")
    assert len(hist) == 3
    val = [float(r["val_score"]) for r in hist]
    assert max(val[1:]) > val[0] + 0.1, val  # mIoU improves after epoch 1
    assert m["miou"] > 0.5, m
    assert m["best_epoch"] == int(np.argmax(val)) + 1
    train_loss = [float(r["train_loss"]) for r in hist]
    assert train_loss[-1] < train_loss[0]


def test_segmenter_rejects_class_index_beyond_classes(tmp_path):
    store = make_segmentation_store(tmp_path, per_split=(2, 1, 1))
    (store / "classes.json").write_text(json.dumps({"task": "segmentation", "classes": ["background", "top"]}))
    with pytest.raises(ValueError, match="index 2"):
        train_segmenter(
            images=store / "images.npy", classmaps=store / "classmaps.npy", manifest=store / "manifest.tsv",
            classes=store / "classes.json", out_dir=tmp_path / "run", experiment=SEG_EXPERIMENT, seed=0,
        )  # fmt: skip
    assert not (tmp_path / "run" / "metrics.json").exists()
