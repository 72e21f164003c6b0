"""Shared training machinery: seeding, store loading, batching, the epoch loop, checkpoints,
resume and atomic writers.

The classification and segmentation trainers differ only in their model, target array, loss and
score (a :class:`TaskOps`); everything else lives here.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
import logging
import math
import os
import random
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from fashion_rembg import gpu_slots
from fashion_rembg.npy_io import explain_write_errors
from fashion_rembg.training.augment import AUGMENTATIONS
from fashion_rembg.training.augment import augment as augment_images

__all__ = [
    "AUGMENTATIONS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "BatchFeeder",
    "Checkpointer",
    "Store",
    "TaskOps",
    "Tracker",
    "TrainConfig",
    "TrainState",
    "epoch_generator",
    "evaluate",
    "fit",
    "load_model_payload",
    "load_store",
    "normalize_batch",
    "open_store",
    "pick_device",
    "read_classes",
    "read_manifest",
    "require_keys",
    "restore_best",
    "run_metadata",
    "save_npz_atomic",
    "save_torch_atomic",
    "seed_everything",
    "split_indices",
    "to_tensor_batch",
    "train_run",
    "write_csv_atomic",
    "write_json_atomic",
]

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HISTORY_FIELDS = ("epoch", "train_loss", "train_score", "val_loss", "val_score", "lr")
SPLITS = ("train", "val", "test")
CHECKPOINT_NAME = "last.pt"


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
    torch.use_deterministic_algorithms(not cuda)
    torch.backends.cudnn.benchmark = cuda
    torch.set_num_threads(threads)


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


# --------------------------------------------------------------------------- image batches


def _mean_std(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1) * 255.0
    return mean, std


def normalize_batch(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``(B, 3, H, W)`` → float32 normalised with ImageNet mean/std (memory format kept)."""
    mean, std = _mean_std(images.device)
    return (images.float() - mean) / std


def to_tensor_batch(images_uint8: np.ndarray | torch.Tensor, device: torch.device | str | None = None) -> torch.Tensor:
    """uint8 ``(B, H, W, 3)`` RGB → float32 ``(B, 3, H, W)`` normalised with ImageNet mean/std.

    The uint8 batch is moved to ``device`` before conversion (4× less host→device traffic).
    """
    t = torch.as_tensor(images_uint8)
    if t.dtype != torch.uint8 or t.ndim != 4 or t.shape[-1] != 3:
        raise ValueError(f"expected uint8 images (B, H, W, 3), got {tuple(t.shape)} {t.dtype}")
    if device is not None:
        t = t.to(device, non_blocking=True)
    return normalize_batch(t.permute(0, 3, 1, 2)).contiguous()


class BatchFeeder:
    """Serves whole batches by fancy-indexing the decoded uint8 store (no DataLoader, no decoding).

    ``rows``: store rows of this split; ``targets``: array indexed by store row (per-row labels
    ``(N,)`` or class maps ``(N, H, W)``). Batches are gathered as uint8, moved to the device,
    augmented there (batched) and normalised there. On CUDA the next batch is gathered, pinned and
    copied by a helper thread while the current one trains; the thread touches no random state.
    """

    def __init__(
        self,
        images: np.ndarray,
        targets: np.ndarray,
        rows: np.ndarray,
        *,
        batch_size: int,
        device: torch.device,
        input_size: Sequence[int] | None = None,
        prefetch: bool | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.images = images
        self.targets = targets
        self.rows = np.asarray(rows, dtype=np.int64)
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.size = tuple(input_size) if input_size is not None else tuple(images.shape[1:3])
        self.prefetch = self.device.type == "cuda" if prefetch is None else prefetch

    def __len__(self) -> int:
        return len(self.rows)

    def _load(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        imgs = torch.from_numpy(np.ascontiguousarray(self.images[rows]))
        tgts = torch.from_numpy(np.ascontiguousarray(self.targets[rows]))
        if self.device.type == "cuda":
            imgs = imgs.pin_memory().to(self.device, non_blocking=True)
            tgts = tgts.pin_memory().to(self.device, non_blocking=True)
        return imgs, tgts

    def _loaded(self, batches: list[np.ndarray]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if not self.prefetch or len(batches) < 2:
            for rows in batches:
                yield self._load(rows)
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch-prefetch") as pool:
            pending = pool.submit(self._load, batches[0])
            for i in range(len(batches)):
                current = pending.result()
                if i + 1 < len(batches):
                    pending = pool.submit(self._load, batches[i + 1])
                yield current

    def batches(
        self,
        *,
        generator: torch.Generator | None = None,
        shuffle: bool = False,
        augment: str = "none",
        drop_singleton: bool = False,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, np.ndarray]]:
        """Yield ``(x, y, rows)``: normalised images and long targets on the device, store rows.

        The order and one augmentation seed per batch are drawn from ``generator`` up front, so
        the draws depend on (generator, rows) only, never on image content.
        """
        if augment not in AUGMENTATIONS:
            raise ValueError(f"unknown augment {augment!r}; choose one of {list(AUGMENTATIONS)}")
        n = len(self.rows)
        order = torch.randperm(n, generator=generator).numpy() if shuffle else np.arange(n)
        batches = []
        for start in range(0, n, self.batch_size):
            pos = order[start : start + self.batch_size]
            # A 1-sample training batch breaks BatchNorm on 1×1 feature maps; skip it.
            if drop_singleton and len(pos) == 1 and n > 1:
                continue
            # Sorted rows read the memory-mapped store sequentially; a batch is order-free.
            batches.append(np.sort(self.rows[pos]))
        if augment != "none" and generator is not None:
            seeds = torch.randint(0, 2**62, (len(batches),), generator=generator).tolist()
        else:
            seeds = [0] * len(batches)
        for rows, seed, (imgs, tgts) in zip(batches, seeds, self._loaded(batches)):
            maps = tgts if tgts.ndim == 3 else None
            # (B, H, W, 3) → (B, 3, H, W) view: channels-last in memory, as cuDNN likes it.
            images, maps = augment_images(imgs.permute(0, 3, 1, 2), maps, mode=augment, seed=seed, size=self.size)
            x = normalize_batch(images)
            if self.device.type != "cuda":
                x = x.contiguous()
            y = (maps if maps is not None else tgts).long()
            yield x, y, rows


# --------------------------------------------------------------------------- store loading


@dataclass
class Store:
    """A prepared dataset store (see docs/CONTRACTS.md)."""

    manifest: pd.DataFrame
    images: np.ndarray
    classes: list[str] | None = None
    task: str | None = None
    classmaps: np.ndarray | None = None


def read_manifest(path: Path) -> pd.DataFrame:
    """Read ``manifest.tsv`` (columns per CONTRACTS.md), validating columns and splits."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest not found: {path} (run the prepare step first)")
    df = pd.read_csv(
        path,
        sep="\t",
        dtype={"id": str, "source": str, "split": str, "label": str, "note": str},
        keep_default_na=False,  # an empty label (segmentation) must stay "" not NaN
    )
    missing = [c for c in ("index", "id", "split", "label_idx") if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; expected index, id, source, split, label, label_idx, note")
    bad = sorted(set(df["split"]) - set(SPLITS))
    if bad:
        raise ValueError(f"{path}: unknown split value(s) {bad}; allowed {list(SPLITS)}")
    df["index"] = df["index"].astype(np.int64)
    df["label_idx"] = df["label_idx"].astype(np.int64)
    if df["index"].duplicated().any():
        raise ValueError(f"{path}: duplicate values in column 'index'")
    return df


def read_classes(path: Path, task: str | None = None) -> list[str]:
    """Read ``classes.json``; when ``task`` is given, check it matches the file's task."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"classes file not found: {path} (run the prepare step first)")
    data = json.loads(path.read_text())
    if "classes" not in data or not isinstance(data["classes"], list):
        raise ValueError(f"{path}: expected {{'task': ..., 'classes': [...]}}")
    if task is not None and data.get("task") != task:
        raise ValueError(f"{path}: task is {data.get('task')!r} but a {task} run was requested")
    if len(data["classes"]) < 2:
        raise ValueError(f"{path}: need at least 2 classes, got {data['classes']}")
    return [str(c) for c in data["classes"]]


def _open_npy(path: Path, what: str) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    return np.load(path, mmap_mode="r")


def open_store(
    manifest: Path,
    images: Path,
    classes: Path | None = None,
    classmaps: Path | None = None,
    *,
    task: str | None = None,
) -> Store:
    """Open a store from explicit paths (images may be a rembg composite of the same store)."""
    df = read_manifest(manifest)
    imgs = _open_npy(images, "images array")
    if imgs.dtype != np.uint8 or imgs.ndim != 4 or imgs.shape[-1] != 3:
        raise ValueError(f"{images}: expected uint8 (N, H, W, 3), got {imgs.shape} {imgs.dtype}")
    n = imgs.shape[0]
    if len(df) and (df["index"].min() < 0 or df["index"].max() >= n):
        raise ValueError(f"{manifest}: 'index' values must lie in [0, {n}) to match {images} ({n} rows)")
    names = read_classes(classes, task) if classes is not None else None
    cmaps = None
    if classmaps is not None:
        cmaps = _open_npy(classmaps, "class maps array")
        if cmaps.dtype != np.uint8 or cmaps.shape != imgs.shape[:3]:
            raise ValueError(
                f"{classmaps}: expected uint8 {imgs.shape[:3]} to match {images}, got {cmaps.shape} {cmaps.dtype}"
            )
    return Store(manifest=df, images=imgs, classes=names, task=task, classmaps=cmaps)


def load_store(dataset_dir: Path, images_npy: Path | None = None) -> Store:
    """Open ``results/data/<dataset>/``: manifest.tsv, classes.json, images (mmap), classmaps if any.

    ``images_npy`` overrides the store's own ``images.npy`` (e.g. a background-removed variant).
    """
    d = Path(dataset_dir)
    classes = d / "classes.json"
    cmaps = d / "classmaps.npy"
    store = open_store(
        d / "manifest.tsv",
        Path(images_npy) if images_npy is not None else d / "images.npy",
        classes if classes.is_file() else None,
        cmaps if cmaps.is_file() else None,
    )
    if classes.is_file():
        store.task = json.loads(classes.read_text()).get("task")
    return store


def split_indices(manifest: pd.DataFrame, split: str, *, source: str = "manifest") -> np.ndarray:
    """Store rows of ``split`` in manifest order; raises if the split is empty."""
    rows = manifest.loc[manifest["split"] == split, "index"].to_numpy(np.int64)
    if len(rows) == 0:
        raise ValueError(f"{source}: no rows with split == {split!r}; train, val and test splits are all required")
    return rows


def require_keys(experiment: dict, keys: Sequence[str], *, task: str) -> None:
    missing = [k for k in keys if k not in experiment]
    if missing:
        raise ValueError(f"experiment {experiment.get('id', '?')!r}: missing key(s) {missing} for a {task} run")
    if experiment["task"] != task:
        raise ValueError(f"experiment {experiment.get('id', '?')!r}: task is {experiment['task']!r}, expected {task!r}")


# --------------------------------------------------------------------------- atomic writers


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    with explain_write_errors(path, len(data)):
        path.parent.mkdir(parents=True, exist_ok=True)
        # Temp file in the same directory so os.replace is an atomic rename on the same filesystem.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        _write_and_replace(fd, tmp, path, data)


def _write_and_replace(fd: int, tmp: str, path: Path, data: bytes) -> None:
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json_atomic(path: Path, obj: Any) -> None:
    """Sorted keys, 2-space indent, trailing newline: byte-stable for equal content."""
    text = json.dumps(obj, sort_keys=True, indent=2, allow_nan=False, default=_json_default)
    _atomic_write_bytes(path, (text + "\n").encode())


def write_csv_atomic(path: Path, rows: Sequence[dict], fieldnames: Sequence[str]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fieldnames), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    _atomic_write_bytes(path, buf.getvalue().encode())


def save_torch_atomic(path: Path, obj: Any) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    _atomic_write_bytes(path, buf.getvalue())


def save_npz_atomic(path: Path, **arrays: np.ndarray) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    _atomic_write_bytes(path, buf.getvalue())


# --------------------------------------------------------------------------- training loop


class Tracker(Protocol):
    """Accumulates predictions of one pass over a split (on the device: no sync per batch)."""

    def update(self, logits: torch.Tensor, targets: torch.Tensor, rows: np.ndarray) -> None: ...

    def score(self) -> float: ...


class TaskOps(Protocol):
    """What differs between tasks: loss and the score trackers."""

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
    def from_experiment(cls, experiment: dict, seed: int) -> "TrainConfig":
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
        if cfg.augment not in AUGMENTATIONS:
            raise ValueError(f"experiment {eid!r}: augment must be one of {list(AUGMENTATIONS)}, got {cfg.augment!r}")
        if cfg.schedule not in SCHEDULES:
            raise ValueError(f"experiment {eid!r}: schedule must be one of {list(SCHEDULES)}, got {cfg.schedule!r}")
        if not 0.0 <= cfg.label_smoothing < 1.0 or cfg.early_stopping < 0:
            raise ValueError(f"experiment {eid!r}: label_smoothing must be in [0, 1) and early_stopping >= 0")
        return cfg


def _make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


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


def _amp_dtype(device: torch.device, enabled: bool = True) -> torch.dtype | None:
    """Mixed precision on CUDA only (bf16 where supported: no loss scaling needed)."""
    if device.type != "cuda" or not enabled:
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


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
    def create(cls, model: nn.Module, cfg: TrainConfig, device: torch.device) -> "TrainState":
        optimizer = _make_optimizer(model, cfg)
        scheduler = SCHEDULES[cfg.schedule](optimizer, cfg)
        amp = _amp_dtype(device, cfg.amp)
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


def _autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype is not None)


def _train_one_epoch(state: TrainState, feeder: BatchFeeder, task: TaskOps, cfg: TrainConfig, epoch: int) -> tuple[float, float]:
    model, device = state.model, feeder.device
    model.train()
    tracker = task.train_tracker()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    seen = 0
    gen = epoch_generator(cfg.seed, epoch)
    for x, y, rows in feeder.batches(generator=gen, shuffle=True, augment=cfg.augment, drop_singleton=True):
        state.optimizer.zero_grad(set_to_none=True)
        with _autocast(device, state.amp_dtype):
            logits = model(x)
            loss = task.loss(logits, y)
        state.scaler.scale(loss).backward()
        state.scaler.step(state.optimizer)
        state.scaler.update()
        # Accumulate on-device: no host sync per step.
        loss_sum += loss.detach().double() * len(rows)
        seen += len(rows)
        tracker.update(logits.detach(), y, rows)
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
        with _autocast(device, amp_dtype):
            logits = model(x)
            loss = task.loss(logits, y)
        loss_sum += loss.double() * len(rows)
        tracker.update(logits.float(), y, rows)
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
        train_loss, train_score = _train_one_epoch(state, train, task, cfg, epoch)
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
            write_csv_atomic(history_path, state.history, HISTORY_FIELDS)
        if on_epoch_end is not None:
            on_epoch_end(state)
    return state


def restore_best(state: TrainState) -> None:
    """Load the best-on-val weights into the model."""
    if state.best_weights is None:
        raise RuntimeError("no best weights recorded (was fit() run for at least one epoch?)")
    state.model.load_state_dict(copy.deepcopy(state.best_weights))


# --------------------------------------------------------------------------- checkpoints


def input_fingerprint(experiment: dict, seed: int, inputs: Sequence[Path | str | None]) -> str:
    """Identity of a training job: its spec, seed and input files (size, mtime). A checkpoint is
    only resumed by the same job on the same inputs; a rerun after new inputs starts over."""
    files = []
    for p in inputs:
        if p is None:
            continue
        st = Path(p).stat()
        files.append([str(p), st.st_size, st.st_mtime_ns])
    text = json.dumps({"experiment": experiment, "seed": int(seed), "inputs": files}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class Checkpointer:
    """``<directory>/last.pt``: the TrainState after the last finished epoch, written atomically,
    plus ``last.json``: a plain-JSON sidecar with the job fingerprint and the .pt file's sha256.

    It lives outside the job's declared outputs (Snakemake deletes those when a job fails), so a
    rerun after a crash or ``kill -9`` resumes from it. Removed once the job's outputs exist.
    The .pt file is only opened when the sidecar matches this job and the file's hash, and then
    with ``weights_only=True``: a file planted at that path can never run code.
    """

    def __init__(self, directory: Path | str, fingerprint: str) -> None:
        self.path = Path(directory) / CHECKPOINT_NAME
        self.sidecar = self.path.with_suffix(".json")
        self.fingerprint = fingerprint

    def save(self, state: TrainState) -> None:
        buf = io.BytesIO()
        torch.save(state.state_dict(), buf)
        data = buf.getvalue()
        # .pt first: a crash between the two writes leaves a sidecar whose hash no longer matches.
        _atomic_write_bytes(self.path, data)
        write_json_atomic(self.sidecar, {"fingerprint": self.fingerprint, "sha256": hashlib.sha256(data).hexdigest(),
                                         "bytes": len(data), "epoch": state.epoch})  # fmt: skip

    def _start_over(self, why: str) -> bool:
        log.warning("not resuming from checkpoint %s: %s; starting over from epoch 1", self.path, why)
        return False

    def restore(self, state: TrainState) -> bool:
        if not self.path.is_file():
            return False
        try:
            meta = json.loads(self.sidecar.read_text())
            fingerprint, digest, size = meta["fingerprint"], meta["sha256"], int(meta["bytes"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return self._start_over(f"its sidecar {self.sidecar.name} is missing or unreadable ({exc})")
        if fingerprint != self.fingerprint:
            return self._start_over("it belongs to other settings or inputs")
        if self.path.stat().st_size != size:  # checked before reading: it could be any (huge) file
            return self._start_over(f"its size differs from the {size} bytes in {self.sidecar.name}")
        data = self.path.read_bytes()
        if hashlib.sha256(data).hexdigest() != digest:
            return self._start_over(f"its sha256 does not match {self.sidecar.name} (modified or not written by this pipeline)")
        try:
            payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any foreign content: refuse it, never execute it
            return self._start_over(f"it holds more than tensors and plain values ({type(exc).__name__})")
        missing = sorted(TRAIN_STATE_KEYS - set(payload)) if isinstance(payload, dict) else ["(not a dict)"]
        if missing:
            return self._start_over(f"it is not a training state (missing {missing})")
        try:
            state.load_state_dict(payload)
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:
            # Half-applied by now: continuing would not be a fresh start either.
            raise RuntimeError(f"checkpoint {self.path} matches this job but does not fit its model ({exc}); "
                               f"delete {self.path.parent} and rerun") from exc  # fmt: skip
        log.info("resumed from %s after epoch %d", self.path, state.epoch)
        return True

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
        self.sidecar.unlink(missing_ok=True)
        try:
            self.path.parent.rmdir()
        except OSError:
            pass


# --------------------------------------------------------------------------- run drivers


def model_payload(state: TrainState, experiment: dict, seed: int, classes: list[str], device: torch.device,
                  pretrained: dict | None = None) -> dict:
    payload = {
        "state_dict": state.best_weights,
        "best_epoch": state.best_epoch,
        "epochs_run": state.epoch,
        "stopped_early": state.stopped_early,
        "train_device": device.type,
        "experiment": dict(experiment),
        "seed": int(seed),
        "classes": list(classes),
    }
    if pretrained is not None:  # init: imagenet only, so scratch model files keep their bytes
        payload["pretrained"] = dict(pretrained)
    return payload


def load_model_payload(path: Path | str) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path} (run the training job first)")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or "state_dict" not in payload:
        raise ValueError(f"{path}: not a fashion-rembg model file (expected a dict with 'state_dict')")
    return payload


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
) -> dict:
    """Train one (experiment, seed) with resume; write ``model_out`` and ``history_out``.
    ``pretrained``: provenance of the ImageNet weights (``weights_provenance``), kept in the model file.

    Returns the model payload without the weights.
    """
    cfg = TrainConfig.from_experiment(experiment, seed)
    label = f"{experiment.get('id', '?')} seed {seed}"
    seed_everything(seed, threads)
    device = pick_device()
    model = place_model(build_model(), device)

    def feeder(split: str) -> BatchFeeder:
        rows = split_indices(manifest, split, source=str(manifest_path))
        return BatchFeeder(images, targets, rows, batch_size=cfg.batch_size, device=device, input_size=cfg.input_size)

    train, val = feeder("train"), feeder("val")
    state = TrainState.create(model, cfg, device)
    ckpt = None
    if checkpoint_dir is not None:
        ckpt = Checkpointer(checkpoint_dir, input_fingerprint(experiment, seed, fingerprint_inputs))
        ckpt.restore(state)
    fit(state, train=train, val=val, task=ops, cfg=cfg, history_path=Path(history_out),
        on_epoch_end=ckpt.save if ckpt else None, label=label)  # fmt: skip
    if state.best_weights is None:
        raise RuntimeError(f"{label}: no epoch was trained")
    # Rewritten here too: a run resumed after its last epoch trains none and must still write it.
    write_csv_atomic(Path(history_out), state.history, HISTORY_FIELDS)
    # How well the kept (best-on-val) model fits its own training images, without augmentation:
    # history's train_score is a running mean over augmented batches while the weights still move.
    restore_best(state)
    _, fit_tracker = evaluate(state.model, train, ops, state.amp_dtype)
    payload = model_payload(state, experiment, seed, classes, device, pretrained)
    payload["train_score"] = round(float(fit_tracker.score()), 6)
    save_torch_atomic(Path(model_out), payload)
    if ckpt is not None:
        ckpt.clear()
    return {k: v for k, v in payload.items() if k != "state_dict"}


def place_model(model: nn.Module, device: torch.device) -> nn.Module:
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if device.type == "cuda" else model


# Evaluation of a trained model on the test split of several image conditions (both tasks).
def load_trained_model(payload: dict, build_model: Callable[[], nn.Module], device: torch.device) -> nn.Module:
    model = build_model()
    model.load_state_dict(payload["state_dict"])
    return place_model(model, device)


def check_trained_classes(payload: dict, names: list[str], model_path, classes_path) -> None:
    if list(payload.get("classes", names)) != names:
        raise ValueError(f"{model_path}: trained on classes {payload.get('classes')} but {classes_path} lists {names}")


def test_row_ids(manifest: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    id_of = dict(zip(manifest["index"].to_numpy().tolist(), manifest["id"].tolist()))
    return np.array([id_of[int(r)] for r in rows], dtype=str)


def same_test_rows(ids_ref: np.ndarray | None, ids: np.ndarray, conditions: Sequence[dict], cond: dict) -> np.ndarray:
    """Every condition must be tested on the same rows, in the same order, as the first."""
    if ids_ref is not None and not np.array_equal(ids, ids_ref):
        raise ValueError(f"{cond['images']}: test rows differ from {conditions[0]['images']}")
    return ids if ids_ref is None else ids_ref


def cross_entry(cond: dict, metrics: dict) -> dict:
    return {"key": cond["key"], "variant": cond["variant"], "sod": cond.get("sod"), "fill": cond.get("fill"),
            "metrics": metrics}  # fmt: skip


def write_evaluation(*, experiment: dict, seed: int, payload: dict, device: torch.device, names: list[str],
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
    save_npz_atomic(Path(predictions_out), conditions=np.array([c["key"] for c in conditions], dtype=str), **arrays)
    write_json_atomic(Path(metrics_out), result)
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
