"""Shared training machinery: seeding, store loading, batching, the epoch loop, atomic writers.

The classification and segmentation trainers differ only in their model, target array, loss and
score (a :class:`TaskOps`); everything else lives here.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import os
import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

__all__ = [
    "AUGMENTATIONS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "BatchFeeder",
    "Store",
    "TaskOps",
    "Tracker",
    "TrainConfig",
    "TrainState",
    "augment_batch",
    "epoch_generator",
    "evaluate",
    "fit",
    "load_store",
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
    "write_csv_atomic",
    "write_json_atomic",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
AUGMENTATIONS = ("none", "flip")
HISTORY_FIELDS = ("epoch", "train_loss", "train_score", "val_loss", "val_score", "lr")
SPLITS = ("train", "val", "test")


# --------------------------------------------------------------------------- seeding / device


def seed_everything(seed: int, threads: int = 1, *, warn_only: bool | None = None) -> None:
    """Seed python/numpy/torch, force deterministic kernels and fix the CPU thread count.

    On CUDA some kernels used by the models (e.g. adaptive pooling / upsampling backward) have no
    deterministic implementation; ``warn_only`` (default: True iff CUDA is available) lets them run
    with a warning instead of raising. Byte-identical results are only promised on CPU.
    """
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    # Required by cuBLAS for deterministic GEMMs; must be set before the first cuBLAS call.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if warn_only is None:
        warn_only = torch.cuda.is_available()
    torch.use_deterministic_algorithms(True, warn_only=warn_only)
    torch.backends.cudnn.benchmark = False
    torch.set_num_threads(threads)


def pick_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """CPU generator for one epoch's shuffling/augmentation, a pure function of (seed, epoch).

    Deriving it from (seed, epoch) instead of carrying one stream means a resumed run replays the
    exact same batches without having to store generator state.
    """
    state = np.random.SeedSequence([int(seed), int(epoch)]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def capture_rng_state() -> dict:
    """Global RNG states (dropout etc. draw from the torch global generator)."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------- image batches


def to_tensor_batch(images_uint8: np.ndarray | torch.Tensor, device: torch.device | str | None = None) -> torch.Tensor:
    """uint8 ``(B, H, W, 3)`` RGB → float32 ``(B, 3, H, W)`` normalised with ImageNet mean/std.

    The uint8 batch is moved to ``device`` before conversion (4× less host→device traffic).
    """
    t = torch.as_tensor(images_uint8)
    if t.dtype != torch.uint8 or t.ndim != 4 or t.shape[-1] != 3:
        raise ValueError(f"expected uint8 images (B, H, W, 3), got {tuple(t.shape)} {t.dtype}")
    if device is not None:
        t = t.to(device, non_blocking=True)
    x = t.permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous()


def augment_batch(
    images: torch.Tensor,
    maps: torch.Tensor | None = None,
    *,
    mode: str,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Augment a uint8 batch ``(B, H, W, 3)`` (and its class maps ``(B, H, W)`` identically).

    ``none``: unchanged. ``flip``: each sample is mirrored left-right with probability 1/2, drawn
    from ``generator`` (seed it per epoch for reproducibility).
    """
    if mode not in AUGMENTATIONS:
        raise ValueError(f"unknown augment {mode!r}; choose one of {list(AUGMENTATIONS)}")
    if mode == "none":
        return images, maps
    flip = torch.rand(images.shape[0], generator=generator) < 0.5
    if flip.any():
        images = images.clone()
        images[flip] = images[flip].flip(2)  # W axis of (B, H, W, C)
        if maps is not None:
            maps = maps.clone()
            maps[flip] = maps[flip].flip(2)  # W axis of (B, H, W)
    return images, maps


class BatchFeeder:
    """Serves whole batches by fancy-indexing the decoded uint8 store (no DataLoader needed).

    ``rows``: store rows of this split; ``targets``: array indexed by store row (per-row labels
    ``(N,)`` or class maps ``(N, H, W)``).
    """

    def __init__(
        self,
        images: np.ndarray,
        targets: np.ndarray,
        rows: np.ndarray,
        *,
        batch_size: int,
        device: torch.device,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.images = images
        self.targets = targets
        self.rows = np.asarray(rows, dtype=np.int64)
        self.batch_size = batch_size
        self.device = device

    def __len__(self) -> int:
        return len(self.rows)

    def batches(
        self,
        *,
        generator: torch.Generator | None = None,
        shuffle: bool = False,
        augment: str = "none",
        drop_singleton: bool = False,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, np.ndarray]]:
        """Yield ``(x, y, rows)``: normalised images and long targets on the device, store rows."""
        n = len(self.rows)
        order = torch.randperm(n, generator=generator).numpy() if shuffle else np.arange(n)
        for start in range(0, n, self.batch_size):
            pos = order[start : start + self.batch_size]
            # A 1-sample training batch breaks BatchNorm on 1×1 feature maps; skip it.
            if drop_singleton and len(pos) == 1 and n > 1:
                continue
            # Sorted rows read the memory-mapped store sequentially; a batch is order-free.
            rows = np.sort(self.rows[pos])
            imgs = torch.from_numpy(np.ascontiguousarray(self.images[rows]))
            tgts = torch.from_numpy(np.ascontiguousarray(self.targets[rows]))
            maps = tgts if tgts.ndim == 3 else None
            imgs, maps = augment_batch(imgs, maps, mode=augment, generator=generator)
            if maps is not None:
                tgts = maps
            x = to_tensor_batch(imgs, self.device)
            y = tgts.to(self.device, non_blocking=True).long()
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
    path.parent.mkdir(parents=True, exist_ok=True)
    # Temp file in the same directory so os.replace is an atomic rename on the same filesystem.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
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
    """Accumulates predictions of one pass over a split."""

    def update(self, logits: torch.Tensor, targets: torch.Tensor, rows: np.ndarray) -> None: ...

    def score(self) -> float: ...


class TaskOps(Protocol):
    """What differs between tasks: loss and the score tracker."""

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor: ...

    def tracker(self) -> Tracker: ...


@dataclass(frozen=True)
class TrainConfig:
    epochs: int
    batch_size: int
    lr: float
    optimizer: str
    weight_decay: float
    augment: str
    seed: int

    @classmethod
    def from_experiment(cls, experiment: dict, seed: int) -> "TrainConfig":
        eid = experiment.get("id", "?")
        cfg = cls(
            epochs=int(experiment["epochs"]),
            batch_size=int(experiment["batch_size"]),
            lr=float(experiment["lr"]),
            optimizer=str(experiment["optimizer"]).lower(),
            weight_decay=float(experiment["weight_decay"]),
            augment=str(experiment["augment"]).lower(),
            seed=int(seed),
        )
        if cfg.epochs < 1 or cfg.batch_size < 1 or not cfg.lr > 0:
            raise ValueError(f"experiment {eid!r}: epochs, batch_size and lr must be positive, got {cfg}")
        if cfg.optimizer not in ("sgd", "adamw"):
            raise ValueError(f"experiment {eid!r}: optimizer must be 'sgd' or 'adamw', got {cfg.optimizer!r}")
        if cfg.augment not in AUGMENTATIONS:
            raise ValueError(f"experiment {eid!r}: augment must be one of {list(AUGMENTATIONS)}, got {cfg.augment!r}")
        return cfg


def _make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def _amp_dtype(device: torch.device) -> torch.dtype | None:
    """Mixed precision on CUDA only (bf16 where supported: no loss scaling needed)."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


@dataclass
class TrainState:
    """Everything needed to continue training after ``epoch`` (for checkpoint/resume)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    epoch: int = 0  # last completed epoch
    best_score: float = -math.inf
    best_epoch: int = 0
    best_weights: dict | None = None
    history: list[dict] = field(default_factory=list)

    @classmethod
    def create(cls, model: nn.Module, cfg: TrainConfig, device: torch.device) -> "TrainState":
        optimizer = _make_optimizer(model, cfg)
        # Cosine decay stepped once per epoch, from lr down towards 0 after the last epoch.
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
        scaler = torch.amp.GradScaler(device.type, enabled=_amp_dtype(device) == torch.float16)
        return cls(model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler)

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
        self.history = list(state["history"])
        restore_rng_state(state["rng"])


def _autocast(device: torch.device):
    dtype = _amp_dtype(device)
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype is not None)


def _train_one_epoch(state: TrainState, feeder: BatchFeeder, task: TaskOps, cfg: TrainConfig, epoch: int) -> tuple[float, float]:
    model, device = state.model, feeder.device
    model.train()
    tracker = task.tracker()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    seen = 0
    gen = epoch_generator(cfg.seed, epoch)
    for x, y, rows in feeder.batches(generator=gen, shuffle=True, augment=cfg.augment, drop_singleton=True):
        state.optimizer.zero_grad(set_to_none=True)
        with _autocast(device):
            logits = model(x)
            loss = task.loss(logits, y)
        state.scaler.scale(loss).backward()
        state.scaler.step(state.optimizer)
        state.scaler.update()
        # Accumulate on-device: no host sync per step.
        loss_sum += loss.detach().double() * len(rows)
        seen += len(rows)
        tracker.update(logits.detach().float(), y, rows)
    if seen == 0:
        raise ValueError("training split produced no batches")
    return float(loss_sum.item()) / seen, tracker.score()


@torch.no_grad()
def evaluate(model: nn.Module, feeder: BatchFeeder, task: TaskOps) -> tuple[float, Tracker]:
    """Mean loss and the filled tracker for one pass over ``feeder`` (eval mode, no augmentation)."""
    device = feeder.device
    model.eval()
    tracker = task.tracker()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    for x, y, rows in feeder.batches():
        with _autocast(device):
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

    After each epoch the history CSV is rewritten and ``on_epoch_end(state)`` is called (the
    place to save ``state.state_dict()`` for resuming).
    """
    for epoch in range(state.epoch + 1, cfg.epochs + 1):
        lr = state.optimizer.param_groups[0]["lr"]
        train_loss, train_score = _train_one_epoch(state, train, task, cfg, epoch)
        if not math.isfinite(train_loss):
            raise FloatingPointError(f"{label}: training loss became {train_loss} in epoch {epoch}; lower lr")
        state.scheduler.step()
        val_loss, val_tracker = evaluate(state.model, val, task)
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


def run_metadata(experiment: dict, seed: int, device: torch.device, classes: list[str], metrics: dict) -> dict:
    """The metrics.json document (CONTRACTS.md): no timings or paths, so it is reproducible."""
    return {
        "experiment": dict(experiment),
        "seed": int(seed),
        "device": device.type,
        "classes": list(classes),
        "metrics": metrics,
    }
