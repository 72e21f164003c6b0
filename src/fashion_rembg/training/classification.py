"""Style classification training (FashionStyle14-like stores)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fashion_rembg.evaluation.metrics import classification_metrics
from fashion_rembg.models.classifiers import build_classifier
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

__all__ = ["REQUIRED_KEYS", "ClassificationOps", "train_classifier"]

REQUIRED_KEYS = (
    "id", "task", "dataset", "arch", "variant", "epochs", "batch_size", "lr", "optimizer",
    "weight_decay", "augment", "width", "blocks", "batch_norm", "dropout",
)  # fmt: skip


class _LogitTracker:
    """Keeps every logit row (small: N × C) so test metrics and predictions come from one pass."""

    def __init__(self) -> None:
        self.logits: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []
        self.rows: list[np.ndarray] = []

    def update(self, logits: torch.Tensor, targets: torch.Tensor, rows: np.ndarray) -> None:
        self.logits.append(logits.cpu().numpy().astype(np.float32))
        self.labels.append(targets.cpu().numpy().astype(np.int64))
        self.rows.append(np.asarray(rows, dtype=np.int64))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return np.concatenate(self.logits), np.concatenate(self.labels), np.concatenate(self.rows)

    def score(self) -> float:
        logits, labels, _ = self.arrays()
        return float((logits.argmax(1) == labels).mean())


class ClassificationOps:
    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, targets)

    def tracker(self) -> _LogitTracker:
        return _LogitTracker()


def train_classifier(
    *,
    images: Path,
    manifest: Path,
    classes: Path,
    out_dir: Path,
    experiment: dict,
    seed: int,
    threads: int = 1,
) -> dict:
    """Train ``experiment['arch']`` on the manifest's train rows, pick the best epoch on val
    accuracy and evaluate it on test.

    Writes into ``out_dir``: ``metrics.json`` (CONTRACTS.md; also returned), ``history.csv``,
    ``model.pt`` (best-on-val state dict) and ``predictions.npz`` (test ``logits``, ``labels``,
    ``ids``).
    """
    require_keys(experiment, REQUIRED_KEYS, task="classification")
    cfg = TrainConfig.from_experiment(experiment, seed)
    out_dir = Path(out_dir)
    label = f"{experiment['id']} seed {seed}"

    store = open_store(manifest, images, classes, task="classification")
    names = store.classes
    assert names is not None
    df = store.manifest
    bad = df[(df["label_idx"] < 0) | (df["label_idx"] >= len(names))]
    if len(bad):
        raise ValueError(
            f"{manifest}: label_idx must lie in [0, {len(names)}) for classification "
            f"(classes from {classes}); bad rows e.g. id={bad['id'].iloc[0]!r} label_idx={bad['label_idx'].iloc[0]}"
        )
    # Labels indexed by store row, so a batch's targets come from the same fancy index as its images.
    labels = np.full(store.images.shape[0], -1, dtype=np.int64)
    labels[df["index"].to_numpy()] = df["label_idx"].to_numpy()
    ids = dict(zip(df["index"].to_numpy().tolist(), df["id"].tolist()))

    seed_everything(seed, threads)
    device = pick_device()
    h, w = store.images.shape[1:3]
    model = build_classifier(
        experiment["arch"],
        len(names),
        width=int(experiment["width"]),
        blocks=int(experiment["blocks"]),
        batch_norm=bool(experiment["batch_norm"]),
        dropout=float(experiment["dropout"]),
        image_size=h if h == w else None,
    ).to(device)

    def feeder(split: str) -> BatchFeeder:
        rows = split_indices(df, split, source=str(manifest))
        return BatchFeeder(store.images, labels, rows, batch_size=cfg.batch_size, device=device)

    train, val, test = feeder("train"), feeder("val"), feeder("test")
    ops = ClassificationOps()
    state = TrainState.create(model, cfg, device)
    fit(state, train=train, val=val, task=ops, cfg=cfg, history_path=out_dir / "history.csv", label=label)

    restore_best(state)
    _, tracker = evaluate(state.model, test, ops)
    logits, y, rows = tracker.arrays()
    metrics = classification_metrics(logits, y, len(names))
    metrics["best_epoch"] = state.best_epoch

    save_torch_atomic(out_dir / "model.pt", state.best_weights)
    save_npz_atomic(
        out_dir / "predictions.npz",
        logits=logits,
        labels=y,
        ids=np.array([ids[int(r)] for r in rows], dtype=str),
    )
    result = run_metadata(experiment, seed, device, names, metrics)
    write_json_atomic(out_dir / "metrics.json", result)
    return result
