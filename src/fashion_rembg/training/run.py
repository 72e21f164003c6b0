"""One (experiment, seed) run, for every task: train it (with resume) and evaluate the trained
model on the test split of several image conditions (train-on-X/test-on-Y).

What differs between tasks (store checks, model, loss/score, what the test pass writes) comes
from a :class:`RunTask`; the loops here are shared, so both tasks train and evaluate alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from fashion_rembg.atomic import save_npz, save_torch, write_csv, write_json
from fashion_rembg.models.detectors import coco_weights_provenance
from fashion_rembg.models.weights import weights_provenance
from fashion_rembg.training.checkpoint import Checkpointer, input_fingerprint, load_model_payload, model_payload
from fashion_rembg.training.data import BatchFeeder, Store, channels_last_on, split_indices
from fashion_rembg.training.loop import (
    HISTORY_FIELDS,
    TaskOps,
    Tracker,
    TrainConfig,
    TrainState,
    amp_dtype,
    evaluate,
    fit,
    pick_device,
    place_model,
    restore_best,
    seed_everything,
)

__all__ = ["RunTask", "evaluate_task", "run_metadata", "train_run", "train_task"]


class RunTask(Protocol):
    """A task's part of a run, bound to one experiment and its store files (manifest, classes...)."""

    name: str  # experiment["task"]
    evaluate_name: str  # the public entry point, named in errors
    cfg: TrainConfig
    manifest: Path
    classes: Path
    inputs: Sequence[Path]  # the store files besides the images: they identify the job for resume
    cpu_channels_last: bool  # channels-last on the CPU too (measured faster for the task's models)

    def open(self, images: Path, *, training: bool) -> tuple[Store, list[str], np.ndarray]:
        """The store with ``images``, its class names and the targets indexed by store row, checked."""
        ...

    def model_builder(self, names: list[str], store: Store, *, init: str, torch_home) -> Callable[[], nn.Module]: ...

    def ops(self, names: list[str], *, evaluation: bool) -> TaskOps: ...

    def test_outputs(self, tracker: Tracker, names: list[str], key: str) -> tuple[dict, np.ndarray, dict, dict]:
        """``(metrics, store rows in evaluation order, arrays of this condition, arrays of the run)``:
        the run's arrays are kept from the first (own) condition."""
        ...


def train_task(task: RunTask, *, images: Path, model_out: Path, history_out: Path, experiment: dict, seed: int,
               threads: int = 1, checkpoint_dir: Path | None = None, torch_home: Path | None = None) -> dict:
    """Train ``task`` on ``images`` (its manifest's train rows, best epoch on val); see :func:`train_run`."""
    store, names, targets = task.open(Path(images), training=True)
    init = experiment.get("init", "scratch")
    pretrained = None  # which pretrained file: kept in the model file, the report labels stand-ins
    if init == "imagenet":
        pretrained = weights_provenance(experiment, torch_home)
    elif init == "coco":
        pretrained = coco_weights_provenance(experiment["arch"], torch_home)
    return train_run(
        experiment=experiment,
        seed=seed,
        threads=threads,
        images=store.images,
        targets=targets,  # indexed by store row like the images, so flips/crops move class maps too
        manifest=store.manifest,
        manifest_path=task.manifest,
        classes=names,
        build_model=task.model_builder(names, store, init=init, torch_home=torch_home),
        ops=task.ops(names, evaluation=False),
        model_out=model_out,
        history_out=history_out,
        checkpoint_dir=checkpoint_dir,
        fingerprint_inputs=[images, *task.inputs],
        pretrained=pretrained,
        cpu_channels_last=task.cpu_channels_last,
    )


def train_run(
    *,
    experiment: dict,
    seed: int,
    threads: int,
    images: np.ndarray,
    targets: np.ndarray,
    manifest: pd.DataFrame,
    manifest_path: Path | str,
    classes: list[str],
    build_model: Callable[[], nn.Module],
    ops: TaskOps,
    model_out: Path | str,
    history_out: Path | str,
    checkpoint_dir: Path | str | None = None,
    fingerprint_inputs: Sequence[Path | str | None] = (),
    pretrained: dict | None = None,
    cpu_channels_last: bool = False,
) -> dict:
    """Train one (experiment, seed) with resume; write ``model_out`` and ``history_out``.
    ``pretrained``: provenance of the ImageNet weights (``weights_provenance``), kept in the model file.
    ``cpu_channels_last``: model and batches channels-last on the CPU too (``place_model``).

    Returns the model payload without the weights.
    """
    cfg = TrainConfig.from_experiment(experiment, seed)
    label = f"{experiment.get('id', '?')} seed {seed}"
    ckpt = None
    if checkpoint_dir is not None:
        ckpt = Checkpointer(checkpoint_dir, input_fingerprint(experiment, seed, fingerprint_inputs))
        if ckpt.reuse(model_out, history_out):
            return {k: v for k, v in load_model_payload(model_out).items() if k != "state_dict"}
    seed_everything(seed, threads)
    device = pick_device()
    model = place_model(build_model(), device, cpu_channels_last)

    def feeder(split: str) -> BatchFeeder:
        rows = split_indices(manifest, split, source=str(manifest_path))
        return BatchFeeder(images, targets, rows, batch_size=cfg.batch_size, device=device, input_size=cfg.input_size,
                           channels_last=channels_last_on(device, cpu_channels_last))

    train, val = feeder("train"), feeder("val")
    state = TrainState.create(model, cfg, device)
    if ckpt is not None:
        ckpt.restore(state)
    fit(state, train=train, val=val, task=ops, cfg=cfg, history_path=Path(history_out),
        on_epoch_end=ckpt.save if ckpt else None, label=label)  # fmt: skip
    if state.best_weights is None:
        raise RuntimeError(f"{label}: no epoch was trained")
    # Rewritten here too: a run resumed after its last epoch trains none and must still write it.
    write_csv(Path(history_out), state.history, HISTORY_FIELDS)
    # How well the kept (best-on-val) model fits its own training images, without augmentation:
    # history's train_score is a running mean over augmented batches while the weights still move.
    restore_best(state)
    _, fit_tracker = evaluate(state.model, train, ops, state.amp_dtype)
    payload = model_payload(state, experiment, seed, classes, device, pretrained)
    payload["train_score"] = round(float(fit_tracker.score()), 6)
    save_torch(Path(model_out), payload)
    if ckpt is not None:
        ckpt.finish(model_out, history_out)
    return {k: v for k, v in payload.items() if k != "state_dict"}


# --------------------------------------------------------------------------- evaluation


def evaluate_task(task: RunTask, *, model: Path, conditions: Sequence[dict], metrics_out: Path,
                  predictions_out: Path, experiment: dict, seed: int, threads: int = 1) -> dict:
    """Evaluate a trained model on the test split of every image condition.

    ``conditions``: dicts with ``key``, ``variant``, ``sod``, ``fill``, ``images``; the first is the
    model's own training condition, whose metrics are ``metrics`` in metrics.json; all of them are
    listed under ``cross``. predictions.npz holds ``conditions``, ``ids`` and the task's arrays.
    """
    if not conditions:
        raise ValueError(f"{task.evaluate_name}: no test conditions given")
    cfg = task.cfg
    payload = load_model_payload(model)
    seed_everything(seed, threads)
    device = pick_device()
    net, names, ids_ref = None, None, None
    cross, run_arrays, arrays = [], {}, {}
    for i, cond in enumerate(conditions):
        store, names, targets = task.open(Path(cond["images"]), training=False)
        if list(payload.get("classes", names)) != names:
            raise ValueError(f"{model}: trained on classes {payload.get('classes')} but {task.classes} lists {names}")
        if net is None:
            net = task.model_builder(names, store, init="scratch", torch_home=None)()
            net.load_state_dict(payload["state_dict"])
            net = place_model(net, device, task.cpu_channels_last)
        rows = split_indices(store.manifest, "test", source=str(task.manifest))
        feeder = BatchFeeder(store.images, targets, rows, batch_size=cfg.batch_size, device=device,
                             input_size=cfg.input_size,
                             channels_last=channels_last_on(device, task.cpu_channels_last))  # fmt: skip
        _, tracker = evaluate(net, feeder, task.ops(names, evaluation=True), amp_dtype(device, cfg.amp))
        metrics, order, cond_arrays, first_arrays = task.test_outputs(tracker, names, cond["key"])
        cross.append({"key": cond["key"], "variant": cond["variant"], "sod": cond.get("sod"),
                      "fill": cond.get("fill"), "metrics": metrics})  # fmt: skip
        arrays.update(cond_arrays)
        if i == 0:
            run_arrays = first_arrays
        # Every condition must be tested on the same rows, in the same order, as the first.
        ids = _row_ids(store.manifest, order)
        if ids_ref is not None and not np.array_equal(ids, ids_ref):
            raise ValueError(f"{cond['images']}: test rows differ from {conditions[0]['images']}")
        ids_ref = ids if ids_ref is None else ids_ref
    return _write_evaluation(experiment=experiment, seed=seed, payload=payload, device=device, names=names,
                             cross=cross, conditions=conditions, metrics_out=metrics_out,
                             predictions_out=predictions_out, ids=ids_ref, **run_arrays, **arrays)  # fmt: skip


def _row_ids(manifest: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    id_of = dict(zip(manifest["index"].to_numpy().tolist(), manifest["id"].tolist()))
    return np.array([id_of[int(r)] for r in rows], dtype=str)


def _write_evaluation(*, experiment: dict, seed: int, payload: dict, device: torch.device, names: list[str],
                      cross: list[dict], conditions: Sequence[dict], metrics_out, predictions_out,
                      **arrays: np.ndarray) -> dict:
    """metrics.json (own condition + best epoch, and ``cross``) and predictions.npz, written last."""
    own = dict(cross[0]["metrics"])
    own["best_epoch"] = int(payload["best_epoch"])
    own["epochs_run"] = int(payload["epochs_run"])
    if "train_score" in payload:  # the kept model on its training images, no augmentation
        own["train_score"] = float(payload["train_score"])
    result = run_metadata(experiment, seed, payload.get("train_device", device.type), names, own)
    result["cross"] = cross
    if payload.get("pretrained"):  # which ImageNet weights: the report labels the demo's stand-ins
        result["pretrained"] = dict(payload["pretrained"])
    save_npz(Path(predictions_out), conditions=np.array([c["key"] for c in conditions], dtype=str), **arrays)
    write_json(Path(metrics_out), result)
    return result


def run_metadata(experiment: dict, seed: int, device: torch.device | str, classes: list[str], metrics: dict) -> dict:
    """The metrics.json document (CONTRACTS.md): no timings or paths, so it is reproducible."""
    return {
        "experiment": dict(experiment),
        "seed": int(seed),
        "device": torch.device(device).type,
        "classes": list(classes),
        "metrics": metrics,
    }
