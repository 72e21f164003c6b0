"""Atomic outputs (.npy arrays, any file): a job killed mid-write never leaves a complete-looking file behind."""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import PipelineError


def _free_bytes(path: Path) -> int | None:
    for folder in (path, *path.parents):
        if folder.exists():
            try:
                return shutil.disk_usage(folder).free
            except OSError:
                return None
    return None


@contextlib.contextmanager
def explain_write_errors(path: Path, needed: int | None = None) -> Iterator[None]:
    """Turn a full disk or a read-only/unwritable results folder into a PipelineError that names
    the file (and the space needed) instead of a traceback from deep inside numpy or torch."""
    try:
        yield
    except OSError as err:
        path = Path(path)
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            free = _free_bytes(path)
            need = f"about {needed:,} bytes needed, " if needed else ""
            have = f"{free:,} bytes free" if free is not None else "free space unknown"
            raise PipelineError(f"disk full while writing {path} ({need}{have} there); free some space or move "
                                "results/ to a larger disk, then rerun") from None
        if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise PipelineError(f"cannot write {path}: {err.strerror} (is the results folder read-only or owned by "
                                "another user?); make it writable and rerun") from None
        raise


@contextlib.contextmanager
def atomic_file(path: Path, needed: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` only if the block succeeds."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with explain_write_errors(path, needed):
            path.parent.mkdir(parents=True, exist_ok=True)
            yield tmp
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_npy(out_npy: Path, shape: tuple[int, ...], dtype=np.uint8) -> Iterator[np.ndarray]:
    """Yield an array to fill, backed by a temporary .npy that replaces ``out_npy`` on success."""
    with atomic_file(out_npy, needed=int(np.prod(shape)) * np.dtype(dtype).itemsize) as tmp:
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
