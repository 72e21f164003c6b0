"""Instance segmentation: torchvision Mask R-CNN trained and evaluated on an image store plus its
instance store (`datasets.instances`).

Images come from the store's uint8 `.npy` (or a rembg composite of it, same rows) and go to the
model as float [0, 1] (the model normalises them itself); targets come from `InstanceStore.target`.
Crowd regions never enter the loss (torchvision's losses have no ignore regions; its references
drop them too) and crowd-only images are left out of training; evaluation keeps both and lets
COCOeval ignore crowd regions. Batches are a pure function of (seed, epoch), every kernel is
deterministic on CPU (`seed_everything`), so the same seed gives byte-identical weights there.

Deliberately small (the pipeline wiring — checkpoints/resume, history, cross-condition metadata —
is done by the pipeline's run drivers).
"""
from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from pycocotools import mask as mask_utils
from torch import nn

from fashion_rembg.atomic import save_torch, write_json
from fashion_rembg.datasets.instances import InstanceStore
from fashion_rembg.datasets.store import read_manifest
from fashion_rembg.evaluation.coco_eval import evaluate_coco, write_coco_files
from fashion_rembg.models.detectors import build_instance_model
from fashion_rembg.training.checkpoint import load_model_payload
from fashion_rembg.training.data import split_indices
from fashion_rembg.training.loop import epoch_generator, pick_device, seed_everything

__all__ = ["REQUIRED_KEYS", "evaluate_instance", "images_to_tensors", "predict", "train_instance",
           "train_one_epoch", "training_rows"]

log = logging.getLogger(__name__)

REQUIRED_KEYS = ("id", "arch", "epochs", "batch_size", "lr", "weight_decay")
MASK_THRESHOLD = 0.5  # torchvision's references binarise predicted masks at 0.5


def images_to_tensors(images: np.ndarray, device: torch.device | str = "cpu") -> list[torch.Tensor]:
    """uint8 (B, H, W, 3) → list of float (3, H, W) in [0, 1] (Mask R-CNN takes a list)."""
    batch = torch.as_tensor(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float().div_(255.0)
    return list(batch.unbind(0))


def training_rows(store: InstanceStore, rows: np.ndarray) -> np.ndarray:
    """Rows that have at least one non-crowd instance (crowd-only images teach nothing to the loss)."""
    return np.asarray([r for r in rows if not store.crowd_only(int(r)) and store.record(int(r))["instances"]],
                      dtype=np.int64)


def _batches(rows: np.ndarray, batch_size: int, generator: torch.Generator | None) -> Iterator[np.ndarray]:
    order = rows if generator is None else rows[torch.randperm(len(rows), generator=generator).numpy()]
    for start in range(0, len(order), batch_size):
        yield np.sort(order[start : start + batch_size])  # sorted: mmap reads go forward


def train_one_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, images: np.ndarray, store: InstanceStore,
                    rows: np.ndarray, batch_size: int, generator: torch.Generator,
                    device: torch.device | str = "cpu", max_steps: int | None = None) -> float:
    """One pass over `rows` in a shuffled order drawn from `generator`; mean summed loss per step."""
    model.train()
    total, steps = 0.0, 0
    for batch in _batches(rows, batch_size, generator):
        targets = [{k: v.to(device) for k, v in store.target(int(r)).items() if k != "iscrowd"} for r in batch]
        losses = model(images_to_tensors(images[batch], device), targets)
        loss = sum(losses.values())
        if not math.isfinite(float(loss.detach())):
            raise FloatingPointError(
                f"Mask R-CNN loss became {float(loss)} ({ {k: float(v) for k, v in losses.items()} }); lower lr"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total, steps = total + float(loss.detach()), steps + 1
        if max_steps is not None and steps >= max_steps:
            break
    if steps == 0:
        raise ValueError("training split has no image with a non-crowd instance")
    return total / steps


@torch.no_grad()
def predict(
    model: nn.Module, images: np.ndarray, rows: np.ndarray, batch_size: int, device: torch.device | str = "cpu"
) -> list[dict]:
    """COCO-style predictions (image_id = store row; segmentation = compressed RLE; bbox [x, y, w, h])."""
    model.eval()
    out = []
    for batch in _batches(np.asarray(rows, np.int64), batch_size, None):
        for row, det in zip(batch, model(images_to_tensors(images[batch], device))):
            masks = (det["masks"][:, 0] > MASK_THRESHOLD).to(torch.uint8).cpu().numpy()
            boxes = det["boxes"].cpu().numpy().astype(np.float64)
            for k in range(len(masks)):
                rle = mask_utils.encode(np.asfortranarray(masks[k]))
                x0, y0, x1, y1 = boxes[k]
                out.append(
                    {
                        "image_id": int(row),
                        "category_id": int(det["labels"][k]),
                        "score": round(float(det["scores"][k]), 6),
                        "segmentation": {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode()},
                        "bbox": [round(float(v), 3) for v in (x0, y0, x1 - x0, y1 - y0)],
                    }
                )
    return out


def _open(images: Path, instances_dir: Path, manifest: Path):
    imgs = np.load(images, mmap_mode="r")
    store = InstanceStore(instances_dir)
    df = read_manifest(manifest)
    if (
        imgs.dtype != np.uint8
        or imgs.ndim != 4
        or imgs.shape[0] != len(store)
        or imgs.shape[1:3] != (store.height, store.width)
    ):
        raise ValueError(
            f"{images}: {imgs.shape} {imgs.dtype} does not match the instance store {instances_dir} "
            f"({len(store)} rows of {store.height}×{store.width}); were they prepared together?"
        )
    return imgs, store, df


def _model(experiment: dict, store: InstanceStore, torch_home, init: str) -> nn.Module:
    return build_instance_model(
        experiment["arch"], len(store.classes), init=init, torch_home=torch_home, image_size=(store.height, store.width)
    )


def train_instance(
    *,
    images: Path,
    instances_dir: Path,
    manifest: Path,
    model_out: Path,
    history_out: Path,
    experiment: dict,
    seed: int,
    threads: int = 1,
    torch_home: Path | None = None,
) -> dict:
    """Train Mask R-CNN (SGD + momentum, as torchvision's detection references) for
    `experiment['epochs']`, keeping the epoch with the best val segm AP. Writes the model payload
    (`state_dict`, `best_epoch`, `classes`, `experiment`, `seed`) and a JSON history."""
    missing = [k for k in REQUIRED_KEYS if k not in experiment]
    if missing:
        raise ValueError(f"experiment {experiment.get('id', '?')!r}: missing key(s) {missing} for an instance run")
    seed_everything(seed, threads)
    imgs, store, df = _open(images, instances_dir, manifest)
    train_rows = training_rows(store, split_indices(df, "train", source=str(manifest)))
    val_rows = split_indices(df, "val", source=str(manifest))
    device = pick_device()
    model = _model(experiment, store, torch_home, experiment.get("init", "scratch")).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(
        params, lr=float(experiment["lr"]), momentum=0.9, weight_decay=float(experiment["weight_decay"])
    )
    history, best = [], {"score": -math.inf, "epoch": 0, "weights": None}
    for epoch in range(1, int(experiment["epochs"]) + 1):
        loss = train_one_epoch(
            model,
            optimizer,
            imgs,
            store,
            train_rows,
            int(experiment["batch_size"]),
            epoch_generator(seed, epoch),
            device,
        )
        predictions = predict(model, imgs, val_rows, int(experiment["batch_size"]), device)
        val = evaluate_coco(store.coco_ground_truth(val_rows), predictions, with_per_image=False)
        score = val["segm"]["AP"] if val["segm"]["AP"] is not None else 0.0
        history.append({"epoch": epoch, "train_loss": round(loss, 6), "val_segm_ap": score})
        log.info("%s: epoch %d loss %.4f val segm AP %.4f", experiment["id"], epoch, loss, score)
        if score > best["score"]:  # ties keep the earlier epoch
            best = {
                "score": score,
                "epoch": epoch,
                "weights": {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()},
            }
    payload = {
        "state_dict": best["weights"],
        "best_epoch": best["epoch"],
        "classes": list(store.classes),
        "experiment": dict(experiment),
        "seed": int(seed),
    }
    save_torch(model_out, payload)
    write_json(history_out, history)
    return {"best_epoch": best["epoch"], "best_val_segm_ap": best["score"], "history": history}


def evaluate_instance(
    *,
    model: Path,
    instances_dir: Path,
    manifest: Path,
    conditions: Sequence[dict],
    out_dir: Path,
    experiment: dict,
    seed: int,
    threads: int = 1,
) -> dict:
    """COCO metrics on the test split for every image condition (`{"key", "images"}`; the first is the
    model's own). Per condition `<out_dir>/<key>/`: ground_truth.json, results_{segm,bbox}.json
    (re-scorable with plain pycocotools) and the metrics in `<out_dir>/metrics.json`."""
    if not conditions:
        raise ValueError("evaluate_instance: no test conditions given")
    seed_everything(seed, threads)
    payload = load_model_payload(model)
    device = pick_device()
    net, cross = None, []
    for cond in conditions:
        imgs, store, df = _open(Path(cond["images"]), instances_dir, manifest)
        if list(payload["classes"]) != list(store.classes):
            raise ValueError(
                f"{model} was trained on classes {payload['classes']}, {instances_dir} has {store.classes}"
            )
        if net is None:
            net = _model(experiment, store, None, "scratch")
            net.load_state_dict(payload["state_dict"])
            net.to(device)
        rows = split_indices(df, "test", source=str(manifest))
        gt = store.coco_ground_truth(rows)
        predictions = predict(net, imgs, rows, int(experiment["batch_size"]), device)
        write_coco_files(Path(out_dir) / cond["key"], gt, predictions)
        cross.append({"condition": cond["key"], **evaluate_coco(gt, predictions)})
    result = {
        "experiment": experiment["id"],
        "seed": int(seed),
        "best_epoch": payload.get("best_epoch"),
        "metrics": cross[0],
        "cross": cross,
    }
    write_json(Path(out_dir) / "metrics.json", result)
    return result
