"""Training data: the prepared store (manifest, classes, images, class maps), its splits, and the
batch feeder that serves normalised, augmented batches on the device (torchvision's references
keep this in their ``presets``/dataset code; here it is one memory-mapped array, so no DataLoader)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd
import torch

from fashion_rembg.datasets.store import read_manifest
from fashion_rembg.training.augment import augment as augment_images
from fashion_rembg.training.augment import augment_mode

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "BatchFeeder",
    "Store",
    "channels_last_on",
    "load_store",
    "normalize_batch",
    "open_store",
    "read_classes",
    "split_indices",
    "to_tensor_batch",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# --------------------------------------------------------------------------- store loading


@dataclass
class Store:
    """A prepared dataset store (see docs/CONTRACTS.md)."""

    manifest: pd.DataFrame
    images: np.ndarray
    classes: list[str] | None = None
    task: str | None = None
    classmaps: np.ndarray | None = None


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


def channels_last_on(device: torch.device | str, cpu_channels_last: bool = False) -> bool:
    """Whether models and batches use channels-last memory on ``device``: on CUDA (cuDNN) and, with
    ``cpu_channels_last``, on the CPU too (a shallow CNN training step ~1.4x faster there, its
    max-pools; ResNet-18 and U-Net steps are not: benchmarks/cpu_memory_format.py)."""
    kind = torch.device(device).type
    return kind == "cuda" or (cpu_channels_last and kind == "cpu")


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
        channels_last: bool | None = None,
    ) -> None:
        """``channels_last``: yield the batches in that memory layout (default: ``channels_last_on(device)``)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.images = images
        self.targets = targets
        self.channels_last = channels_last_on(device) if channels_last is None else bool(channels_last)
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
        augment_mode(augment)  # fail before the first batch
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
            x = normalize_batch(images)  # channels-last in memory as loaded
            if not self.channels_last:
                x = x.contiguous()
            y = (maps if maps is not None else tgts).long()
            yield x, y, rows
