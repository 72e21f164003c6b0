"""Semantic segmentation (ModaNet-like stores with per-pixel class maps): training and
cross-condition evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from fashion_rembg.evaluation.metrics import miou_of_confusions, segmentation_metrics
from fashion_rembg.models.segmenters import build_segmenter
from fashion_rembg.training.data import Store, open_store, split_indices
from fashion_rembg.training.loop import TrainConfig, require_keys
from fashion_rembg.training.run import evaluate_task, train_task

__all__ = ["REQUIRED_KEYS", "SegmentationOps", "SegmentationTask", "evaluate_segmenter", "train_segmenter"]

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
        self.image_confusions: list[torch.Tensor] = []  # (B, C, C) per batch: the statistics resample images

    def update(self, logits: torch.Tensor, targets: torch.Tensor, rows: np.ndarray) -> None:
        c = self.num_classes
        pred = logits.argmax(1)
        if self.keep_predictions:
            self.predictions.append(pred.to(torch.uint8).cpu().numpy())
            self.rows.append(np.asarray(rows))
            image = torch.arange(len(pred), device=pred.device).view(-1, *[1] * (pred.dim() - 1))
            cells = (image * (c * c) + targets * c + pred).flatten()
            self.image_confusions.append(torch.bincount(cells, minlength=len(pred) * c * c).view(-1, c, c))
        counts = torch.bincount((targets * c + pred).flatten(), minlength=c * c).view(c, c)
        self.confusion = counts if self.confusion is None else self.confusion + counts

    def matrix(self) -> np.ndarray:
        if self.confusion is None:
            raise RuntimeError("no batches were evaluated")
        return self.confusion.cpu().numpy().astype(np.int64)

    def metrics(self) -> dict:
        return segmentation_metrics(self.matrix(), self.names)

    def per_image(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-image pixel confusion matrices (N, C, C) int32 and per-image mean IoU (N,) float32."""
        confusions = torch.cat(self.image_confusions).cpu().numpy().astype(np.int32)
        return confusions, miou_of_confusions(confusions).astype(np.float32)

    def score(self) -> float:
        return float(self.metrics()["miou"])


class SegmentationOps:
    def __init__(self, names: list[str], keep_predictions: bool = False) -> None:
        self.names = names
        self.keep_predictions = keep_predictions

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), targets)

    def tracker(self) -> _ConfusionTracker:
        return _ConfusionTracker(len(self.names), self.names, self.keep_predictions)

    def train_tracker(self) -> _ConfusionTracker:
        return _ConfusionTracker(len(self.names), self.names)


class SegmentationTask:
    """The segmentation part of a run (a ``RunTask``): a store with class maps, a segmenter, class
    maps and per-image confusions out."""

    name = "segmentation"
    evaluate_name = "evaluate_segmenter"
    cpu_channels_last = False  # U-Net: no faster on the CPU (measured), so the default layout

    def __init__(self, experiment: dict, seed: int, classmaps: Path, manifest: Path, classes: Path) -> None:
        require_keys(experiment, REQUIRED_KEYS, task=self.name)
        self.experiment = experiment
        self.cfg = TrainConfig.from_experiment(experiment, seed)
        self.classmaps, self.manifest, self.classes = classmaps, manifest, classes
        self.inputs = (classmaps, manifest, classes)

    def open(self, images: Path, *, training: bool) -> tuple[Store, list[str], np.ndarray]:
        store = open_store(self.manifest, images, self.classes, self.classmaps, task=self.name)
        names, cmaps = store.classes, store.classmaps
        assert names is not None and cmaps is not None
        h, w = self.cfg.input_size or store.images.shape[1:3]
        if h % _STRIDE or w % _STRIDE:
            raise ValueError(
                f"{images}: segmentation needs image height and width divisible by {_STRIDE}, got {h}x{w}; "
                "choose a store_size (or input_size) that is a multiple of 32"
            )
        if training:
            self._check_class_maps(store, cmaps, names)
        return store, names, cmaps

    def _check_class_maps(self, store: Store, cmaps: np.ndarray, names: list[str]) -> None:
        # Out-of-range class indices would make cross-entropy fail with an opaque device assert.
        for split in ("train", "val", "test"):
            rows = np.sort(split_indices(store.manifest, split, source=str(self.manifest)))
            top = max(int(cmaps[rows[i : i + 256]].max()) for i in range(0, len(rows), 256))
            if top >= len(names):
                raise ValueError(f"{self.classmaps}: {split} class maps contain index {top} but {self.classes} "
                                 f"lists {len(names)} classes")  # fmt: skip

    def model_builder(self, names: list[str], store: Store, *, init: str, torch_home):
        experiment = self.experiment

        def build():
            return build_segmenter(experiment["arch"], experiment["encoder"], len(names), init=init,
                                   torch_home=torch_home)  # fmt: skip

        return build

    def ops(self, names: list[str], *, evaluation: bool) -> SegmentationOps:
        # Predicted maps are kept only for the test pass (predictions.npz), not every epoch.
        return SegmentationOps(names, keep_predictions=evaluation)

    def test_outputs(self, tracker: _ConfusionTracker, names: list[str], key: str):
        arrays = {f"predictions_{key}": np.concatenate(tracker.predictions)}
        arrays[f"confusion_{key}"], arrays[f"iou_{key}"] = tracker.per_image()
        return tracker.metrics(), np.concatenate(tracker.rows), arrays, {}


def train_segmenter(
    *,
    images: Path,
    classmaps: Path,
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
    """Train ``experiment['arch']`` / ``experiment['encoder']`` with pixel cross-entropy, keeping
    the best epoch on val mIoU. Writes ``model_out`` and ``history_out`` (score = mIoU); with
    ``checkpoint_dir`` a rerun resumes from the last finished epoch.
    """
    task = SegmentationTask(experiment, seed, classmaps, manifest, classes)
    return train_task(task, images=images, model_out=model_out, history_out=history_out, experiment=experiment,
                      seed=seed, threads=threads, checkpoint_dir=checkpoint_dir, torch_home=torch_home)  # fmt: skip


def evaluate_segmenter(
    *,
    model: Path,
    classmaps: Path,
    manifest: Path,
    classes: Path,
    conditions: Sequence[dict],
    metrics_out: Path,
    predictions_out: Path,
    experiment: dict,
    seed: int,
    threads: int = 1,
) -> dict:
    """Evaluate a trained segmenter on the test split of every image condition (first = its own,
    see ``run.evaluate_task``). predictions.npz: ``ids``, ``conditions`` and per condition
    ``predictions_<key>`` (uint8 class maps), ``confusion_<key>`` (per-image pixel confusion
    matrices) and ``iou_<key>`` (per-image mean IoU).
    """
    task = SegmentationTask(experiment, seed, classmaps, manifest, classes)
    return evaluate_task(task, model=model, conditions=conditions, metrics_out=metrics_out,
                         predictions_out=predictions_out, experiment=experiment, seed=seed,
                         threads=threads)  # fmt: skip
