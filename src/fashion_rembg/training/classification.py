"""Style classification: training (FashionStyle14-like stores) and cross-condition evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from fashion_rembg.evaluation.metrics import classification_metrics
from fashion_rembg.models.classifiers import build_classifier
from fashion_rembg.models.weights import weights_provenance
from fashion_rembg.training.common import (
    BatchFeeder,
    TrainConfig,
    _amp_dtype,
    check_trained_classes,
    cross_entry,
    evaluate,
    load_model_payload,
    load_trained_model,
    open_store,
    pick_device,
    require_keys,
    same_test_rows,
    seed_everything,
    split_indices,
    test_row_ids,
    train_run,
    write_evaluation,
)

__all__ = ["REQUIRED_KEYS", "ClassificationOps", "evaluate_classifier", "train_classifier"]

REQUIRED_KEYS = (
    "id", "task", "dataset", "arch", "variant", "epochs", "batch_size", "lr", "optimizer",
    "weight_decay", "augment",
)  # fmt: skip


class _LogitTracker:
    """Keeps every logit row on the device (small: N × C); one host copy at the end."""

    def __init__(self) -> None:
        self.logits: list[torch.Tensor] = []
        self.labels: list[torch.Tensor] = []
        self.rows: list[np.ndarray] = []

    def update(self, logits: torch.Tensor, targets: torch.Tensor, rows: np.ndarray) -> None:
        self.logits.append(logits.float())
        self.labels.append(targets)
        self.rows.append(np.asarray(rows, dtype=np.int64))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (
            torch.cat(self.logits).cpu().numpy().astype(np.float32),
            torch.cat(self.labels).cpu().numpy().astype(np.int64),
            np.concatenate(self.rows),
        )

    def score(self) -> float:
        logits, labels = torch.cat(self.logits), torch.cat(self.labels)
        return float((logits.argmax(1) == labels).double().mean().item())


class _AccuracyTracker:
    """Training accuracy as two on-device counters."""

    def __init__(self) -> None:
        self.correct: torch.Tensor | None = None
        self.seen = 0

    def update(self, logits: torch.Tensor, targets: torch.Tensor, rows: np.ndarray) -> None:
        hits = (logits.argmax(1) == targets).sum()
        self.correct = hits if self.correct is None else self.correct + hits
        self.seen += len(rows)

    def score(self) -> float:
        return float(self.correct.item()) / self.seen if self.seen else 0.0


class ClassificationOps:
    def __init__(self, label_smoothing: float = 0.0) -> None:
        self.label_smoothing = label_smoothing

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), targets, label_smoothing=self.label_smoothing)

    def tracker(self) -> _LogitTracker:
        return _LogitTracker()

    def train_tracker(self) -> _AccuracyTracker:
        return _AccuracyTracker()


def _labelled_store(images: Path, manifest: Path, classes: Path):
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
    return store, names, labels


def _model_builder(experiment: dict, num_classes: int, size: tuple[int, int], torch_home, init: str):
    def build():
        return build_classifier(
            experiment["arch"],
            num_classes,
            width=experiment.get("width"),
            blocks=experiment.get("blocks"),
            batch_norm=experiment.get("batch_norm"),
            dropout=experiment.get("dropout"),
            image_size=size[0] if size[0] == size[1] else None,
            init=init,
            torch_home=torch_home,
        )

    return build


def train_classifier(
    *,
    images: Path,
    manifest: Path,
    classes: Path,
    model_out: Path,
    history_out: Path,
    experiment: dict,
    seed: int,
    threads: int = 1,
    checkpoint_dir: Path | None = None,
    torch_home: Path | None = None,
) -> dict:
    """Train ``experiment['arch']`` on the manifest's train rows, keeping the best epoch on val
    accuracy. Writes ``model_out`` (best weights + best epoch, CONTRACTS.md) and ``history_out``.
    With ``checkpoint_dir`` the state is saved every epoch and a rerun resumes from it.
    """
    require_keys(experiment, REQUIRED_KEYS, task="classification")
    cfg = TrainConfig.from_experiment(experiment, seed)
    store, names, labels = _labelled_store(images, manifest, classes)
    size = cfg.input_size or tuple(store.images.shape[1:3])
    init = experiment.get("init", "scratch")
    return train_run(
        experiment=experiment,
        seed=seed,
        threads=threads,
        images=store.images,
        targets=labels,
        manifest=store.manifest,
        manifest_path=manifest,
        classes=names,
        build_model=_model_builder(experiment, len(names), size, torch_home, init),
        ops=ClassificationOps(cfg.label_smoothing),
        model_out=model_out,
        history_out=history_out,
        checkpoint_dir=checkpoint_dir,
        fingerprint_inputs=[images, manifest, classes],
        pretrained=weights_provenance(experiment, torch_home) if init == "imagenet" else None,
    )


def evaluate_classifier(
    *,
    model: Path,
    manifest: Path,
    classes: Path,
    conditions: Sequence[dict],
    metrics_out: Path,
    predictions_out: Path,
    experiment: dict,
    seed: int,
    threads: int = 1,
) -> dict:
    """Evaluate a trained model on the test split of every image condition.

    ``conditions``: dicts with ``key``, ``variant``, ``sod``, ``fill``, ``images``; the first is the
    model's own training condition, whose metrics are ``metrics`` in metrics.json; all of them
    (train-on-X/test-on-Y) are listed under ``cross``. ``predictions_out`` holds ``ids``,
    ``labels``, ``conditions`` and ``logits_<key>`` per condition.
    """
    require_keys(experiment, REQUIRED_KEYS, task="classification")
    if not conditions:
        raise ValueError("evaluate_classifier: no test conditions given")
    cfg = TrainConfig.from_experiment(experiment, seed)
    payload = load_model_payload(model)
    seed_everything(seed, threads)
    device = pick_device()
    net, names, ids_ref, labels_ref = None, None, None, None
    cross, arrays = [], {}
    for cond in conditions:
        store, names, labels = _labelled_store(Path(cond["images"]), manifest, classes)
        check_trained_classes(payload, names, model, classes)
        size = cfg.input_size or tuple(store.images.shape[1:3])
        if net is None:
            net = load_trained_model(payload, _model_builder(experiment, len(names), size, None, "scratch"), device)
        rows = split_indices(store.manifest, "test", source=str(manifest))
        feeder = BatchFeeder(store.images, labels, rows, batch_size=cfg.batch_size, device=device, input_size=size)
        _, tracker = evaluate(net, feeder, ClassificationOps(cfg.label_smoothing), _amp_dtype(device, cfg.amp))
        logits, y, order = tracker.arrays()
        cross.append(cross_entry(cond, classification_metrics(logits, y, len(names))))
        arrays[f"logits_{cond['key']}"] = logits
        ids_ref = same_test_rows(ids_ref, test_row_ids(store.manifest, order), conditions, cond)
        labels_ref = y if labels_ref is None else labels_ref
    result = write_evaluation(experiment=experiment, seed=seed, payload=payload, device=device, names=names,
                              cross=cross, conditions=conditions, metrics_out=metrics_out,
                              predictions_out=predictions_out, ids=ids_ref, labels=labels_ref, **arrays)
    return result
