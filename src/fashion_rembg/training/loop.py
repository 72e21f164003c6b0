"""The training loop: run settings (:class:`TrainConfig`), seeding and device, optimiser and
learning-rate schedule factories, mixed precision, the resumable :class:`TrainState`, and
``fit``/``evaluate`` over a :class:`~fashion_rembg.training.data.BatchFeeder`.

The tasks differ only in their loss and score (a :class:`TaskOps`); everything here is shared.
"""

from __future__ import annotations

import copy
import logging
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np
import torch
from torch import nn

from fashion_rembg import gpu_slots
from fashion_rembg.atomic import write_csv
from fashion_rembg.training.augment import augment_mode
from fashion_rembg.training.data import BatchFeeder, channels_last_on

__all__ = [
    "HISTORY_FIELDS",
    "SCHEDULES",
    "TaskOps",
    "Tracker",
    "TrainConfig",
    "TrainState",
    "amp_dtype",
    "autocast",
    "epoch_generator",
    "evaluate",
    "fit",
    "pick_device",
    "place_model",
    "require_keys",
    "restore_best",
    "seed_everything",
    "set_deterministic",
    "task_forward",
    "train_one_epoch",
]

log = logging.getLogger(__name__)

HISTORY_FIELDS = ("epoch", "train_loss", "train_score", "val_loss", "val_score", "lr")


# --------------------------------------------------------------------------- seeding / device


def seed_everything(seed: int, threads: int = 1) -> None:
    """Seed python/numpy/torch, fix the CPU thread count and, on CPU, force deterministic kernels.

    Byte-identical results are promised on CPU. On CUDA the fast non-deterministic kernels are
    kept (cuDNN autotuning): runs differ in the last digits, which is what the seeds average over.
    """
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    cuda = torch.cuda.is_available()
    set_deterministic(not cuda)
    torch.backends.cudnn.benchmark = cuda
    torch.set_num_threads(threads)


def set_deterministic(mode: bool) -> None:
    """torch.use_deterministic_algorithms(mode) for eager code, without its import of torch._inductor.

    That function also sets torch._inductor.config.deterministic, and importing it loads inductor and
    dynamo: ~2.5 CPU-s per training or evaluation job, as much as importing torch. Nothing here uses
    torch.compile, so the eager flag is all that matters; inductor's is still set when it is loaded.
    """
    torch._C._set_deterministic_algorithms(mode)
    inductor_config = sys.modules.get("torch._inductor.config")
    if inductor_config is not None:
        inductor_config.deterministic = mode


def pick_device() -> torch.device:
    """The GPU of this job's claimed slot (`gpu_slots`: concurrent jobs get distinct GPUs), else CPU."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    index = gpu_slots.job_gpu(torch.cuda.device_count())
    torch.cuda.set_device(index)  # plain "cuda" (amp, RNG state) means this GPU too, no context on cuda:0
    return torch.device("cuda", index)


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """CPU generator for one epoch's shuffling/augmentation, a pure function of (seed, epoch).

    Deriving it from (seed, epoch) instead of carrying one stream means a resumed run replays the
    exact same batches without having to store generator state.
    """
    state = np.random.SeedSequence([int(seed), int(epoch)]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def capture_rng_state() -> dict:
    """Global RNG states (dropout etc. draw from the torch global generator)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    # Plain ints/lists/tensors only, so a checkpoint loads with torch.load(weights_only=True).
    state = {
        "python": [int(version), torch.tensor(internal, dtype=torch.int64), gauss_next],
        "numpy": [str(name), torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    version, internal, gauss_next = state["python"]
    random.setstate((int(version), tuple(int(v) for v in internal.tolist()), gauss_next))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached)))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def place_model(model: nn.Module, device: torch.device, cpu_channels_last: bool = False) -> nn.Module:
    """On the device, in the memory layout of ``channels_last_on``."""
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if channels_last_on(device, cpu_channels_last) else model


# --------------------------------------------------------------------------- settings


def require_keys(experiment: dict, keys: Sequence[str], *, task: str) -> None:
    missing = [k for k in keys if k not in experiment]
    if missing:
        raise ValueError(f"experiment {experiment.get('id', '?')!r}: missing key(s) {missing} for a {task} run")
    if experiment["task"] != task:
        raise ValueError(f"experiment {experiment.get('id', '?')!r}: task is {experiment['task']!r}, expected {task!r}")


class Tracker(Protocol):
    """Accumulates predictions of one pass over a split (on the device: no sync per batch)."""

    def update(self, logits: torch.Tensor, targets: torch.Tensor, rows: np.ndarray) -> None: ...

    def score(self) -> float: ...


class TaskOps(Protocol):
    """What differs between tasks: loss and the score trackers. A task whose model also takes the
    targets (Mask R-CNN) adds ``forward(model, x, y)``, used instead of ``model(x)``; its outputs
    need not be tensors."""

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor: ...

    def tracker(self) -> Tracker: ...

    def train_tracker(self) -> Tracker: ...


@dataclass(frozen=True)
class TrainConfig:
    epochs: int
    batch_size: int
    lr: float
    optimizer: str
    weight_decay: float
    augment: str
    seed: int
    schedule: str = "cosine"
    label_smoothing: float = 0.0
    early_stopping: int = 0  # patience in epochs; 0 = off
    amp: bool = True
    input_size: tuple[int, int] | None = None

    @classmethod
    def from_experiment(cls, experiment: dict, seed: int) -> TrainConfig:
        eid = experiment.get("id", "?")
        size = experiment.get("input_size")
        cfg = cls(
            epochs=int(experiment["epochs"]),
            batch_size=int(experiment["batch_size"]),
            lr=float(experiment["lr"]),
            optimizer=str(experiment["optimizer"]).lower(),
            weight_decay=float(experiment["weight_decay"]),
            augment=str(experiment["augment"]).lower(),
            seed=int(seed),
            schedule=str(experiment.get("schedule", "cosine")).lower(),
            label_smoothing=float(experiment.get("label_smoothing") or 0.0),
            early_stopping=int(experiment.get("early_stopping") or 0),
            amp=bool(experiment.get("amp", True)),
            input_size=(int(size[0]), int(size[1])) if size else None,
        )
        if cfg.epochs < 1 or cfg.batch_size < 1 or not cfg.lr > 0:
            raise ValueError(f"experiment {eid!r}: epochs, batch_size and lr must be positive, got {cfg}")
        if cfg.optimizer not in ("sgd", "adamw"):
            raise ValueError(f"experiment {eid!r}: optimizer must be 'sgd' or 'adamw', got {cfg.optimizer!r}")
        try:
            augment_mode(cfg.augment)
        except ValueError as err:
            raise ValueError(f"experiment {eid!r}: {err}") from None
        if cfg.schedule not in SCHEDULES:
            raise ValueError(f"experiment {eid!r}: schedule must be one of {list(SCHEDULES)}, got {cfg.schedule!r}")
        if not 0.0 <= cfg.label_smoothing < 1.0 or cfg.early_stopping < 0:
            raise ValueError(f"experiment {eid!r}: label_smoothing must be in [0, 1) and early_stopping >= 0")
        return cfg


# --------------------------------------------------------------------------- optimiser, schedule, precision


def _make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    # The fused kernel: torch's default AdamW on CPU loops over the tensors in Python, ~0.12 CPU-s a
    # step for a 12 M-parameter Mask R-CNN (a quarter of its training step), fused ~0.025; still
    # deterministic. Devices without the fused kernel keep the default.
    fused = all(p.device.type in ("cpu", "cuda") for p in model.parameters())
    return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused or None)


def _cosine(optimizer, cfg):
    # Stepped once per epoch, from lr down towards 0 after the last epoch.
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)


def _step(optimizer, cfg):
    # The classic ÷10 at half and three quarters of the epochs.
    milestones = sorted({max(1, math.ceil(cfg.epochs * f)) for f in (0.5, 0.75)})
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)


def _constant(optimizer, cfg):
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[], gamma=1.0)


# name → fn(optimizer, cfg) → per-epoch scheduler
SCHEDULES: dict[str, Callable[[torch.optim.Optimizer, TrainConfig], torch.optim.lr_scheduler.LRScheduler]] = {
    "cosine": _cosine,
    "step": _step,
    "constant": _constant,
}


def amp_dtype(device: torch.device, enabled: bool = True) -> torch.dtype | None:
    """Mixed precision on CUDA only (bf16 where supported: no loss scaling needed)."""
    if device.type != "cuda" or not enabled:
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None):
    """``torch.autocast`` at ``dtype`` (from :func:`amp_dtype`); a no-op when it is None."""
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype is not None)


# --------------------------------------------------------------------------- state and loop


def task_forward(task: TaskOps, model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    """``model(x)``, or ``task.forward(model, x, y)`` where the task has one."""
    forward = getattr(task, "forward", None)
    return model(x) if forward is None else forward(model, x, y)


@dataclass
class TrainState:
    """Everything needed to continue training after ``epoch`` (for checkpoint/resume)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None = None
    epoch: int = 0  # last completed epoch
    best_score: float = -math.inf
    best_epoch: int = 0
    best_weights: dict | None = None
    stopped_early: bool = False
    history: list[dict] = field(default_factory=list)

    @classmethod
    def create(cls, model: nn.Module, cfg: TrainConfig, device: torch.device) -> TrainState:
        optimizer = _make_optimizer(model, cfg)
        scheduler = SCHEDULES[cfg.schedule](optimizer, cfg)
        amp = amp_dtype(device, cfg.amp)
        scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
        return cls(model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler, amp_dtype=amp)

    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "best_score": self.best_score,
            "best_epoch": self.best_epoch,
            "best_weights": self.best_weights,
            "stopped_early": self.stopped_early,
            "history": list(self.history),
            "rng": capture_rng_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch = int(state["epoch"])
        self.best_score = float(state["best_score"])
        self.best_epoch = int(state["best_epoch"])
        self.best_weights = state["best_weights"]
        self.stopped_early = bool(state.get("stopped_early", False))
        self.history = list(state["history"])
        restore_rng_state(state["rng"])


TRAIN_STATE_KEYS = frozenset(("model", "optimizer", "scheduler", "scaler", "epoch", "best_score", "best_epoch",
                              "best_weights", "history", "rng"))  # fmt: skip


def train_one_epoch(
    state: TrainState, feeder: BatchFeeder, task: TaskOps, cfg: TrainConfig, epoch: int
) -> tuple[float, float]:
    model, device = state.model, feeder.device
    model.train()
    tracker = task.train_tracker()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    seen = 0
    gen = epoch_generator(cfg.seed, epoch)
    for x, y, rows in feeder.batches(generator=gen, shuffle=True, augment=cfg.augment, drop_singleton=True):
        state.optimizer.zero_grad(set_to_none=True)
        with autocast(device, state.amp_dtype):
            logits = task_forward(task, model, x, y)
            loss = task.loss(logits, y)
        state.scaler.scale(loss).backward()
        state.scaler.step(state.optimizer)
        state.scaler.update()
        # Accumulate on-device: no host sync per step.
        loss_sum += loss.detach().double() * len(rows)
        seen += len(rows)
        tracker.update(logits.detach() if torch.is_tensor(logits) else logits, y, rows)
    if seen == 0:
        raise ValueError("training split produced no batches")
    return float(loss_sum.item()) / seen, tracker.score()


@torch.no_grad()
def evaluate(
    model: nn.Module, feeder: BatchFeeder, task: TaskOps, amp_dtype: torch.dtype | None = None
) -> tuple[float, Tracker]:
    """Mean loss and the filled tracker for one pass over ``feeder`` (eval mode, no augmentation)."""
    device = feeder.device
    model.eval()
    tracker = task.tracker()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    for x, y, rows in feeder.batches():
        with autocast(device, amp_dtype):
            logits = task_forward(task, model, x, y)
            loss = task.loss(logits, y)
        loss_sum += loss.double() * len(rows)
        tracker.update(logits.float() if torch.is_tensor(logits) else logits, y, rows)
    return float(loss_sum.item()) / max(len(feeder), 1), tracker


def fit(
    state: TrainState,
    *,
    train: BatchFeeder,
    val: BatchFeeder,
    task: TaskOps,
    cfg: TrainConfig,
    history_path: Path | None = None,
    on_epoch_end: Callable[[TrainState], None] | None = None,
    label: str = "run",
) -> TrainState:
    """Train from ``state.epoch + 1`` to ``cfg.epochs``, keeping the best-on-val weights.

    With ``cfg.early_stopping = p`` training stops once ``p`` epochs passed without a better val
    score (checked before each epoch, so a resumed run stops at the same point). After each epoch
    the history CSV is rewritten and ``on_epoch_end(state)`` is called (checkpointing).
    """
    for epoch in range(state.epoch + 1, cfg.epochs + 1):
        if cfg.early_stopping and state.epoch - state.best_epoch >= cfg.early_stopping:
            state.stopped_early = True
            log.info("%s: early stop after epoch %d (best %d)", label, state.epoch, state.best_epoch)
            break
        lr = state.optimizer.param_groups[0]["lr"]
        started = time.perf_counter()
        train_loss, train_score = train_one_epoch(state, train, task, cfg, epoch)
        seconds = time.perf_counter() - started  # logged only: metrics stay free of timings
        if not math.isfinite(train_loss):
            raise FloatingPointError(f"{label}: training loss became {train_loss} in epoch {epoch}; lower lr")
        state.scheduler.step()
        val_loss, val_tracker = evaluate(state.model, val, task, state.amp_dtype)
        val_score = val_tracker.score()
        state.history.append(
            {
                "epoch": epoch,
                "train_loss": round(train_loss, 6),
                "train_score": round(train_score, 6),
                "val_loss": round(val_loss, 6),
                "val_score": round(val_score, 6),
                "lr": round(lr, 10),
            }
        )
        # Strictly better only: ties keep the earlier epoch.
        if val_score > state.best_score:
            state.best_score = val_score
            state.best_epoch = epoch
            state.best_weights = {k: v.detach().to("cpu", copy=True) for k, v in state.model.state_dict().items()}
        state.epoch = epoch
        log.info("%s: epoch %d train_loss %.4f val_score %.4f train %.1f img/s", label, epoch, train_loss, val_score,
                 len(train) / max(seconds, 1e-9))  # fmt: skip
        if history_path is not None:
            write_csv(history_path, state.history, HISTORY_FIELDS)
        if on_epoch_end is not None:
            on_epoch_end(state)
    return state


def restore_best(state: TrainState) -> None:
    """Load the best-on-val weights into the model."""
    if state.best_weights is None:
        raise RuntimeError("no best weights recorded (was fit() run for at least one epoch?)")
    state.model.load_state_dict(copy.deepcopy(state.best_weights))
