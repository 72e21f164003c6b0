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

__all__ = ["REQUIRED_KEYS", "SegmentationOps", "evaluate_segmenter", "train_segmenter"]

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


def _segmentation_store(images: Path, classmaps: Path, manifest: Path, classes: Path, size=None):
    store = open_store(manifest, images, classes, classmaps, task="segmentation")
    names, cmaps = store.classes, store.classmaps
    assert names is not None and cmaps is not None
    h, w = size or store.images.shape[1:3]
    if h % _STRIDE or w % _STRIDE:
        raise ValueError(
            f"{images}: segmentation needs image height and width divisible by {_STRIDE}, got {h}x{w}; "
            "choose a store_size (or input_size) that is a multiple of 32"
        )
    return store, names, cmaps


def _check_class_maps(store, cmaps, names, classmaps, classes, manifest) -> None:
    # Out-of-range class indices would make cross-entropy fail with an opaque device assert.
    for split in ("train", "val", "test"):
        rows = np.sort(split_indices(store.manifest, split, source=str(manifest)))
        top = max(int(cmaps[rows[i : i + 256]].max()) for i in range(0, len(rows), 256))
        if top >= len(names):
            raise ValueError(f"{classmaps}: {split} class maps contain index {top} but {classes} lists {len(names)} classes")


def _model_builder(experiment: dict, num_classes: int, torch_home, init: str):
    def build():
        return build_segmenter(experiment["arch"], experiment["encoder"], num_classes, init=init, torch_home=torch_home)

    return build


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
    require_keys(experiment, REQUIRED_KEYS, task="segmentation")
    cfg = TrainConfig.from_experiment(experiment, seed)
    store, names, cmaps = _segmentation_store(images, classmaps, manifest, classes, cfg.input_size)
    _check_class_maps(store, cmaps, names, classmaps, classes, manifest)
    init = experiment.get("init", "scratch")
    return train_run(
        experiment=experiment,
        seed=seed,
        threads=threads,
        images=store.images,
        targets=cmaps,  # indexed by store row like the images, so flips/crops move both
        manifest=store.manifest,
        manifest_path=manifest,
        classes=names,
        build_model=_model_builder(experiment, len(names), torch_home, init),
        ops=SegmentationOps(names),
        model_out=model_out,
        history_out=history_out,
        checkpoint_dir=checkpoint_dir,
        fingerprint_inputs=[images, classmaps, manifest, classes],
        pretrained=weights_provenance(experiment, torch_home) if init == "imagenet" else None,
    )


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
    """Evaluate a trained segmenter on the test split of every image condition (first = its own).

    metrics.json: ``metrics`` on the own condition (+ best epoch), ``cross`` for all conditions;
    predictions.npz: ``ids``, ``conditions`` and per condition ``predictions_<key>`` (uint8 class maps),
    ``confusion_<key>`` (per-image pixel confusion matrices) and ``iou_<key>`` (per-image mean IoU).
    """
    require_keys(experiment, REQUIRED_KEYS, task="segmentation")
    if not conditions:
        raise ValueError("evaluate_segmenter: no test conditions given")
    cfg = TrainConfig.from_experiment(experiment, seed)
    payload = load_model_payload(model)
    seed_everything(seed, threads)
    device = pick_device()
    net, names, ids_ref = None, None, None
    cross, arrays = [], {}
    for cond in conditions:
        store, names, cmaps = _segmentation_store(Path(cond["images"]), classmaps, manifest, classes, cfg.input_size)
        check_trained_classes(payload, names, model, classes)
        if net is None:
            net = load_trained_model(payload, _model_builder(experiment, len(names), None, "scratch"), device)
        rows = split_indices(store.manifest, "test", source=str(manifest))
        feeder = BatchFeeder(store.images, cmaps, rows, batch_size=cfg.batch_size, device=device,
                             input_size=cfg.input_size)  # fmt: skip
        _, tracker = evaluate(net, feeder, SegmentationOps(names, keep_predictions=True), _amp_dtype(device, cfg.amp))
        cross.append(cross_entry(cond, tracker.metrics()))
        arrays[f"predictions_{cond['key']}"] = np.concatenate(tracker.predictions)
        arrays[f"confusion_{cond['key']}"], arrays[f"iou_{cond['key']}"] = tracker.per_image()
        ids_ref = same_test_rows(ids_ref, test_row_ids(store.manifest, np.concatenate(tracker.rows)), conditions, cond)
    result = write_evaluation(experiment=experiment, seed=seed, payload=payload, device=device, names=names,
                              cross=cross, conditions=conditions, metrics_out=metrics_out,
                              predictions_out=predictions_out, ids=ids_ref, **arrays)
    return result
