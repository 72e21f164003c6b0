"""Tiny synthetic stores and experiments shared by the training, resume and augmentation tests."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

COLOURS = np.array([[220, 30, 30], [30, 200, 40], [40, 60, 230]], dtype=np.uint8)


def write_manifest(path: Path, splits: list[str], labels: list[int], names: list[str] | None) -> None:
    rows = []
    for i, (split, lab) in enumerate(zip(splits, labels)):
        rows.append({"index": i, "id": f"img{i:04d}", "source": f"raw/img{i:04d}.jpg", "split": split,
                     "label": names[lab] if names else "", "label_idx": lab, "note": ""})
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
    write_manifest(d / "manifest.tsv", splits, labels, names)
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
    write_manifest(d / "manifest.tsv", splits, [-1] * len(splits), None)
    (d / "classes.json").write_text(json.dumps({"task": "segmentation", "classes": ["background", "top", "bag"]}))
    return d


CLS_EXPERIMENT = {
    "id": "toy-shallow", "task": "classification", "dataset": "toy", "arch": "shallow_cnn", "init": "scratch",
    "variant": "original", "sod": None, "fill": None, "width": 8, "blocks": 2, "batch_norm": True, "dropout": None,
    "label_smoothing": 0.0, "augment": "flip", "optimizer": "adamw", "lr": 0.01, "schedule": "cosine",
    "weight_decay": 0.0, "epochs": 4, "batch_size": 16, "input_size": None, "early_stopping": 0, "amp": True,
}  # fmt: skip

SEG_EXPERIMENT = {
    "id": "toy-unet", "task": "segmentation", "dataset": "toyseg", "arch": "unet", "encoder": "resnet18",
    "init": "scratch", "variant": "original", "sod": None, "fill": None, "augment": "flip", "optimizer": "adamw",
    "lr": 0.001, "schedule": "cosine", "weight_decay": 0.0, "epochs": 3, "batch_size": 2, "input_size": None,
    "early_stopping": 0, "amp": True,
}  # fmt: skip


def own_condition(images: Path) -> list[dict]:
    return [{"key": "original", "variant": "original", "sod": None, "fill": None, "images": str(images)}]


def train_and_evaluate_cls(
    store: Path, out: Path, seed: int, *, checkpoint_dir=None, conditions=None, **overrides
) -> dict:
    from fashion_rembg.training.classification import evaluate_classifier, train_classifier

    exp = {**CLS_EXPERIMENT, **overrides}
    train_classifier(images=store / "images.npy", manifest=store / "manifest.tsv", classes=store / "classes.json",
                     model_out=out / "model.pt", history_out=out / "history.csv", experiment=exp, seed=seed,
                     threads=1, checkpoint_dir=checkpoint_dir)  # fmt: skip
    return evaluate_classifier(model=out / "model.pt", manifest=store / "manifest.tsv", classes=store / "classes.json",
                               conditions=conditions or own_condition(store / "images.npy"),
                               metrics_out=out / "metrics.json", predictions_out=out / "predictions.npz",
                               experiment=exp, seed=seed, threads=1)  # fmt: skip
