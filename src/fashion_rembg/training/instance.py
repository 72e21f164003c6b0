"""Instance segmentation: torchvision Mask R-CNN trained and evaluated through the shared run
drivers (`training.run`: checkpoints/resume, history.csv, best epoch on val, metrics.json and
predictions.npz), on an image store plus its instance store (`datasets.instances`).

Images come from the store's uint8 `.npy` (or a rembg composite of it, same rows) through the
usual `BatchFeeder`, normalised there with ImageNet mean/std; the model's own transform is set
to identity normalisation, so it sees exactly what torchvision's would give it. The feeder's
"targets" are the store rows; `InstanceOps.forward` turns them into torchvision targets.

Crowd regions never enter the loss (torchvision's losses have no ignore regions; its references
drop them too) and crowd-only images are left out of training; evaluation keeps both and lets
COCOeval ignore crowd regions. torchvision computes no losses in eval mode, so history's
``val_loss`` is NaN (not computed) and ``train_score`` is NaN per epoch; the score is val segm AP.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from pycocotools import mask as mask_utils
from torch import nn

from fashion_rembg.datasets.instances import INDEX_FILE, INSTANCES_FILE, META_FILE, InstanceStore
from fashion_rembg.evaluation.coco_eval import IOU_TYPES, evaluate_coco, write_coco_files
from fashion_rembg.models.detectors import build_instance_model, model_settings
from fashion_rembg.training.data import Store, open_store
from fashion_rembg.training.loop import TrainConfig, require_keys
from fashion_rembg.training.run import evaluate_task, train_task

__all__ = ["REQUIRED_KEYS", "InstanceOps", "InstanceTask", "coco_predictions", "evaluate_instance", "flat_metrics",
           "train_instance", "training_rows"]

REQUIRED_KEYS = (
    "id", "task", "dataset", "arch", "variant", "init", "epochs", "batch_size", "lr", "optimizer", "weight_decay",
    "augment",
)  # fmt: skip
MASK_THRESHOLD = 0.5  # torchvision's references binarise predicted masks at 0.5


def training_rows(store: InstanceStore, rows: np.ndarray) -> np.ndarray:
    """Rows that have at least one non-crowd instance (crowd-only images teach nothing to the loss)."""
    return np.asarray([r for r in rows if not store.crowd_only(int(r)) and store.record(int(r))["instances"]],
                      dtype=np.int64)  # fmt: skip


def coco_predictions(rows: Sequence[int], detections: Sequence[dict]) -> list[dict]:
    """COCO-style results of Mask R-CNN outputs (image_id = store row; segmentation = compressed RLE
    at image size; bbox [x, y, w, h])."""
    out = []
    for row, det in zip(rows, detections):
        masks = (det["masks"][:, 0] > MASK_THRESHOLD).to(torch.uint8).cpu().numpy()
        boxes = det["boxes"].float().cpu().numpy().astype(np.float64)
        scores, labels = det["scores"].float().cpu().numpy(), det["labels"].cpu().numpy()
        for k in range(len(masks)):
            rle = mask_utils.encode(np.asfortranarray(masks[k]))
            x0, y0, x1, y1 = boxes[k]
            out.append({"image_id": int(row), "category_id": int(labels[k]), "score": round(float(scores[k]), 6),
                        "segmentation": {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode()},
                        "bbox": [round(float(v), 3) for v in (x0, y0, x1 - x0, y1 - y0)]})  # fmt: skip
    return out


def flat_metrics(coco: dict) -> dict:
    """evaluate_coco's nested result → metrics.json's flat scalars (``segm_ap``, ``segm_ap50``, …,
    ``bbox_ap``, …; null where COCOeval has no GT of that size) plus ``per_class_{segm,bbox}_ap``."""
    out: dict = {}
    for iou_type in IOU_TYPES:
        for key, value in coco[iou_type].items():
            out[f"per_class_{iou_type}_ap" if key == "per_class" else f"{iou_type}_{key.lower()}"] = value
    quality = coco.get("per_image", {}).get("segm_quality")
    if quality:
        out["mean_segm_quality"] = round(float(np.mean(quality)), 6)
    out["note"] = coco["note"]
    return out


class _CocoTracker:
    """Detections of one pass as COCO results; scored with COCOeval against the instance store."""

    def __init__(self, instances: InstanceStore) -> None:
        self.instances = instances
        self.predictions: list[dict] = []
        self.rows: list[int] = []

    def update(self, detections: list[dict], targets: torch.Tensor, rows: np.ndarray) -> None:
        self.rows.extend(int(r) for r in rows)
        self.predictions.extend(coco_predictions(rows, detections))

    def ground_truth(self) -> dict:
        return self.instances.coco_ground_truth(self.rows)

    def coco(self, with_per_image: bool = True) -> dict:
        return evaluate_coco(self.ground_truth(), self.predictions, with_per_image=with_per_image)

    def score(self) -> float:
        ap = self.coco(with_per_image=False)["segm"]["AP"]
        return float(ap) if ap is not None else 0.0


class _NoScore:
    """Training passes have no detections to score (train mode returns losses only)."""

    def update(self, out, targets, rows) -> None:
        pass

    def score(self) -> float:
        return float("nan")


class InstanceOps:
    """Mask R-CNN takes the targets in its forward pass and returns its losses (train mode) or its
    detections (eval mode): ``forward`` replaces ``model(x)`` in the shared loop."""

    def __init__(self, instances: InstanceStore) -> None:
        self.instances = instances

    def forward(self, model: nn.Module, x: torch.Tensor, rows: torch.Tensor):
        images = list(x.unbind(0))
        if not model.training:
            return model(images)
        targets = [{k: v.to(x.device) for k, v in self.instances.target(int(r)).items() if k != "iscrowd"}
                   for r in rows.tolist()]  # fmt: skip
        return model(images, targets)

    def loss(self, out, targets: torch.Tensor) -> torch.Tensor:
        if isinstance(out, dict):
            return sum(out.values())
        return torch.full((), float("nan"), device=targets.device)  # eval mode: no losses (history val_loss)

    def tracker(self) -> _CocoTracker:
        return _CocoTracker(self.instances)

    def train_tracker(self) -> _NoScore:
        return _NoScore()


class InstanceTask:
    """The instance part of a run (a ``RunTask``): an image store plus its instance store, Mask R-CNN,
    COCO results and per-image segm quality out."""

    name = "instance"
    evaluate_name = "evaluate_instance"
    cpu_channels_last = False  # Mask R-CNN batches lists of images; not measured on the CPU

    def __init__(self, experiment: dict, seed: int, instances_dir: Path, manifest: Path,
                 coco_dir: Path | None = None) -> None:  # fmt: skip
        require_keys(experiment, REQUIRED_KEYS, task=self.name)
        self.experiment = experiment
        self.cfg = TrainConfig.from_experiment(experiment, seed)
        if self.cfg.augment != "none" or self.cfg.input_size is not None:
            raise ValueError(f"experiment {experiment['id']!r}: instance runs take augment: none and no input_size "
                             "(flips and resizes would have to move the boxes and masks too)")  # fmt: skip
        self.instances_dir, self.manifest, self.coco_dir = Path(instances_dir), Path(manifest), coco_dir
        self.instances = InstanceStore(self.instances_dir)
        self.classes = self.instances_dir / META_FILE
        self.inputs = (manifest, *(self.instances_dir / f for f in (INSTANCES_FILE, INDEX_FILE, META_FILE)))

    def open(self, images: Path, *, training: bool) -> tuple[Store, list[str], np.ndarray]:
        store = open_store(self.manifest, images)
        n, h, w = store.images.shape[:3]
        inst = self.instances
        if (n, h, w) != (len(inst), inst.height, inst.width):
            raise ValueError(f"{images}: {n} rows of {h}×{w} do not match the instance store {self.instances_dir} "
                             f"({len(inst)} rows of {inst.height}×{inst.width}); were they prepared together?")
        if training:  # crowd-only / instance-free training images leave the train split
            df = store.manifest
            train = df["index"][df["split"] == "train"].to_numpy(np.int64)
            drop = np.setdiff1d(train, training_rows(inst, train))
            store.manifest = df[~df["index"].isin(drop) | (df["split"] != "train")].reset_index(drop=True)
        names = list(inst.classes)
        store.classes = names
        return store, names, np.arange(n, dtype=np.int64)

    def model_builder(self, names: list[str], store: Store, *, init: str, torch_home):
        arch, size = self.experiment["arch"], (self.instances.height, self.instances.width)

        def build():
            model = build_instance_model(arch, len(names), init=init, torch_home=torch_home, image_size=size)
            # The BatchFeeder already normalised with the same ImageNet mean/std.
            model.transform.image_mean, model.transform.image_std = [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
            return model

        return build

    def ops(self, names: list[str], *, evaluation: bool) -> InstanceOps:
        return InstanceOps(self.instances)

    def test_outputs(self, tracker: _CocoTracker, names: list[str], key: str):
        coco = tracker.coco()
        if self.coco_dir is not None:  # re-scorable with plain pycocotools
            write_coco_files(Path(self.coco_dir) / key, tracker.ground_truth(), tracker.predictions)
        quality_of = dict(zip(coco["per_image"]["image_ids"], coco["per_image"]["segm_quality"]))
        order = np.asarray(tracker.rows, dtype=np.int64)
        metrics = flat_metrics(coco)
        metrics["model_settings"] = model_settings(self.experiment["arch"], (self.instances.height,
                                                                             self.instances.width))
        quality = np.asarray([quality_of[int(r)] for r in order], dtype=np.float32)
        return metrics, order, {f"quality_{key}": quality}, {}


def train_instance(*, images: Path, instances_dir: Path, manifest: Path, model_out: Path, history_out: Path,
                   experiment: dict, seed: int, threads: int = 1, checkpoint_dir: Path | None = None,
                   torch_home: Path | None = None) -> dict:  # fmt: skip
    """Train Mask R-CNN ``experiment['arch']``, keeping the best epoch on val segm AP; writes
    ``model_out`` and ``history_out``; with ``checkpoint_dir`` a rerun resumes after the last epoch."""
    task = InstanceTask(experiment, seed, instances_dir, manifest)
    return train_task(task, images=images, model_out=model_out, history_out=history_out, experiment=experiment,
                      seed=seed, threads=threads, checkpoint_dir=checkpoint_dir, torch_home=torch_home)  # fmt: skip


def evaluate_instance(*, model: Path, instances_dir: Path, manifest: Path, conditions: Sequence[dict],
                      metrics_out: Path, predictions_out: Path, coco_dir: Path, experiment: dict, seed: int,
                      threads: int = 1) -> dict:  # fmt: skip
    """COCO segm/bbox metrics on the test split of every image condition (first = its own, see
    ``run.evaluate_task``). Per condition ``<coco_dir>/<key>/``: ground_truth.json and
    results_{segm,bbox}.json; predictions.npz: ``ids``, ``conditions`` and ``quality_<key>``
    (per-image segm quality at IoU 0.5, ``coco_eval.per_image_quality``)."""
    task = InstanceTask(experiment, seed, instances_dir, manifest, coco_dir=coco_dir)
    return evaluate_task(task, model=model, conditions=conditions, metrics_out=metrics_out,
                         predictions_out=predictions_out, experiment=experiment, seed=seed,
                         threads=threads)  # fmt: skip
