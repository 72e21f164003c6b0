"""Semantic segmentation training (ModaNet-like stores with per-pixel class maps)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fashion_rembg.evaluation.metrics import segmentation_metrics
from fashion_rembg.models.segmenters import build_segmenter
from fashion_rembg.training.common import (
    BatchFeeder,
    TrainConfig,
    TrainState,
    evaluate,
    fit,
    open_store,
    pick_device,
    require_keys,
    restore_best,
    run_metadata,
    save_npz_atomic,
    save_torch_atomic,
    seed_everything,
    split_indices,
    write_json_atomic,
)

__all__ = ["REQUIRED_KEYS", "SegmentationOps", "train_segmenter"]

REQUIRED_KEYS = (
    "id", "task", "dataset", "arch", "variant", "encoder", "epochs", "batch_size", "lr",
    "optimizer", "weight_decay", "augment",
)  # fmt: skip

# Depth-5 encoders downsample by 32; smp rejects other sizes deep inside the forward pass.
_STRIDE = 32


class _ConfusionTracker:
    """Pixel confusion matrix accumulated on the model's device (rows = true class)."""

    def __init__(self, num_classes: int, names: list[str], keep_predictions: bool = False) -> None:
        self.num_classes = num_classes
        self.names = names
        self.confusion: torch.Tensor | None = None
        # Predicted maps are kept only for the final test pass (predictions.npz), not every epoch.
        self.keep_predictions = keep_predictions
        self.predictions: list[np.ndarray] = []
        self.rows: list[np.ndarray] = []

    def update(self, logits: torch.Tensor, targets: torch.Tensor, rows: np.ndarray) -> None:
        c = self.num_classes
        pred = logits.argmax(1)
        if self.keep_predictions:
            self.predictions.append(pred.to(torch.uint8).cpu().numpy())
            self.rows.append(np.asarray(rows))
        counts = torch.bincount((targets * c + pred).flatten(), minlength=c * c).view(c, c)
        self.confusion = counts if self.confusion is None else self.confusion + counts

    def matrix(self) -> np.ndarray:
        if self.confusion is None:
            raise RuntimeError("no batches were evaluated")
        return self.confusion.cpu().numpy().astype(np.int64)

    def metrics(self) -> dict:
        return segmentation_metrics(self.matrix(), self.names)

    def score(self) -> float:
        return float(self.metrics()["miou"])


class SegmentationOps:
    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.keep_predictions = False

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, targets)

    def tracker(self) -> _ConfusionTracker:
        return _ConfusionTracker(len(self.names), self.names, self.keep_predictions)


def train_segmenter(
    *,
    images: Path,
    classmaps: Path,
    manifest: Path,
    classes: Path,
    out_dir: Path,
    experiment: dict,
    seed: int,
    threads: int = 1,
) -> dict:
    """Train ``experiment['arch']`` / ``experiment['encoder']`` with pixel cross-entropy, pick the
    best epoch on val mIoU and evaluate it on test.

    Writes into ``out_dir``: ``metrics.json`` (CONTRACTS.md; also returned), ``history.csv``
    (score = mIoU), ``model.pt`` (best-on-val state dict) and ``predictions.npz`` (test
    ``predictions`` as uint8 class maps, ``ids``).
    """
    require_keys(experiment, REQUIRED_KEYS, task="segmentation")
    cfg = TrainConfig.from_experiment(experiment, seed)
    out_dir = Path(out_dir)
    label = f"{experiment['id']} seed {seed}"

    store = open_store(manifest, images, classes, classmaps, task="segmentation")
    names = store.classes
    cmaps = store.classmaps
    assert names is not None and cmaps is not None
    h, w = store.images.shape[1:3]
    if h % _STRIDE or w % _STRIDE:
        raise ValueError(
            f"{images}: segmentation needs image height and width divisible by {_STRIDE}, got {h}x{w}; "
            "choose a store_size that is a multiple of 32"
        )
    df = store.manifest

    seed_everything(seed, threads)
    device = pick_device()
    model = build_segmenter(experiment["arch"], experiment["encoder"], len(names)).to(device)

    def feeder(split: str) -> BatchFeeder:
        rows = split_indices(df, split, source=str(manifest))
        # Class maps are indexed by store row like the images, so flips apply to both together.
        return BatchFeeder(store.images, cmaps, rows, batch_size=cfg.batch_size, device=device)

    train, val, test = feeder("train"), feeder("val"), feeder("test")
    # Out-of-range class indices would make cross-entropy fail with an opaque device assert.
    for name, f in (("train", train), ("val", val), ("test", test)):
        rows = np.sort(f.rows)
        top = max(int(cmaps[rows[i : i + 256]].max()) for i in range(0, len(rows), 256))
        if top >= len(names):
            raise ValueError(
                f"{classmaps}: {name} class maps contain index {top} but {classes} lists {len(names)} classes"
            )

    ops = SegmentationOps(names)
    state = TrainState.create(model, cfg, device)
    fit(state, train=train, val=val, task=ops, cfg=cfg, history_path=out_dir / "history.csv", label=label)

    restore_best(state)
    ops.keep_predictions = True
    _, tracker = evaluate(state.model, test, ops)
    metrics = tracker.metrics()
    metrics["best_epoch"] = state.best_epoch

    save_torch_atomic(out_dir / "model.pt", state.best_weights)
    rows = np.concatenate(tracker.rows)
    ids = dict(zip(df["index"].to_numpy().tolist(), df["id"].tolist()))
    save_npz_atomic(
        out_dir / "predictions.npz",
        predictions=np.concatenate(tracker.predictions),
        ids=np.array([ids[int(r)] for r in rows], dtype=str),
    )
    result = run_metadata(experiment, seed, device, names, metrics)
    write_json_atomic(out_dir / "metrics.json", result)
    return result
