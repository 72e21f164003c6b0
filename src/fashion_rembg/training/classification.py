"""Style classification: training (FashionStyle14-like stores) and cross-condition evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from fashion_rembg.evaluation.metrics import classification_metrics
from fashion_rembg.models.classifiers import build_classifier
from fashion_rembg.training.data import Store, open_store
from fashion_rembg.training.loop import TrainConfig, require_keys
from fashion_rembg.training.run import evaluate_task, train_task

__all__ = ["REQUIRED_KEYS", "ClassificationOps", "ClassificationTask", "evaluate_classifier", "train_classifier"]

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


class ClassificationTask:
    """The classification part of a run (a ``RunTask``): a labelled store, a classifier, logits out."""

    name = "classification"
    evaluate_name = "evaluate_classifier"
    cpu_channels_last = True  # the shallow CNN's max-pools: a training step ~1.4x faster on the CPU

    def __init__(self, experiment: dict, seed: int, manifest: Path, classes: Path) -> None:
        require_keys(experiment, REQUIRED_KEYS, task=self.name)
        self.experiment = experiment
        self.cfg = TrainConfig.from_experiment(experiment, seed)
        self.manifest, self.classes = manifest, classes
        self.inputs = (manifest, classes)

    def open(self, images: Path, *, training: bool) -> tuple[Store, list[str], np.ndarray]:
        store = open_store(self.manifest, images, self.classes, task=self.name)
        names = store.classes
        assert names is not None
        df = store.manifest
        bad = df[(df["label_idx"] < 0) | (df["label_idx"] >= len(names))]
        if len(bad):
            raise ValueError(
                f"{self.manifest}: label_idx must lie in [0, {len(names)}) for classification (classes from "
                f"{self.classes}); bad rows e.g. id={bad['id'].iloc[0]!r} label_idx={bad['label_idx'].iloc[0]}"
            )
        # Labels indexed by store row, so a batch's targets come from the same fancy index as its images.
        labels = np.full(store.images.shape[0], -1, dtype=np.int64)
        labels[df["index"].to_numpy()] = df["label_idx"].to_numpy()
        return store, names, labels

    def model_builder(self, names: list[str], store: Store, *, init: str, torch_home):
        experiment = self.experiment
        size = self.cfg.input_size or tuple(store.images.shape[1:3])

        def build():
            return build_classifier(
                experiment["arch"],
                len(names),
                width=experiment.get("width"),
                blocks=experiment.get("blocks"),
                batch_norm=experiment.get("batch_norm"),
                dropout=experiment.get("dropout"),
                image_size=size[0] if size[0] == size[1] else None,
                init=init,
                torch_home=torch_home,
            )

        return build

    def ops(self, names: list[str], *, evaluation: bool) -> ClassificationOps:
        return ClassificationOps(self.cfg.label_smoothing)

    def test_outputs(self, tracker: _LogitTracker, names: list[str], key: str):
        logits, labels, order = tracker.arrays()
        return classification_metrics(logits, labels, len(names)), order, {f"logits_{key}": logits}, {"labels": labels}


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
    return train_task(ClassificationTask(experiment, seed, manifest, classes), images=images, model_out=model_out,
                      history_out=history_out, experiment=experiment, seed=seed, threads=threads,
                      checkpoint_dir=checkpoint_dir, torch_home=torch_home)  # fmt: skip


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
    """Evaluate a trained model on the test split of every image condition (first = its own, see
    ``run.evaluate_task``). ``predictions_out`` holds ``ids``, ``labels``, ``conditions`` and
    ``logits_<key>`` per condition.
    """
    return evaluate_task(ClassificationTask(experiment, seed, manifest, classes), model=model, conditions=conditions,
                         metrics_out=metrics_out, predictions_out=predictions_out, experiment=experiment, seed=seed,
                         threads=threads)  # fmt: skip
