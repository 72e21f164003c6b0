"""Atomic outputs (.npy arrays, any file): a job killed mid-write never leaves a complete-looking file behind."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

import numpy as np


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_npy(out_npy: Path, shape: tuple[int, ...], dtype=np.uint8) -> Iterator[np.ndarray]:
    """Yield an array to fill, backed by a temporary .npy that replaces ``out_npy`` on success."""
    with atomic_file(out_npy) as tmp:
        if int(np.prod(shape)) == 0:  # a zero-size memmap cannot be created
            empty = np.empty(shape, dtype=dtype)
            yield empty
            with open(tmp, "wb") as f:
                np.save(f, empty)
        else:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
            yield out
            out.flush()
            del out
