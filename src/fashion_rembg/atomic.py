"""Atomic outputs: a job killed mid-write never leaves a complete-looking file behind.

Every writer goes through :func:`atomic_file` (a temporary file beside the target, renamed over it
only when the write succeeded) and :func:`explain_write_errors` (a full disk or a read-only results
folder becomes a :class:`PipelineError` naming the file instead of a traceback from numpy or torch).
The formats are fixed here so equal content gives equal bytes.
"""
from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from .errors import PipelineError

__all__ = [
    "atomic_file",
    "atomic_npy",
    "explain_write_errors",
    "save_npy",
    "save_npz",
    "save_torch",
    "write_bytes",
    "write_csv",
    "write_json",
    "write_text",
    "write_tsv",
]


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
    """Yield a temporary path beside ``path`` (same filesystem, so the rename is atomic); it
    replaces ``path`` only if the block succeeds, and is removed in any case."""
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


def write_bytes(path: Path, data: bytes) -> None:
    """``data`` to ``path``, flushed to disk before the rename (a checkpoint survives a power cut)."""
    with atomic_file(path, needed=len(data)) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode())


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


def write_json(path: Path, obj: Any, *, allow_nan: bool = False) -> None:
    """Sorted keys, 2-space indent, trailing newline: byte-stable for equal content. NaN is refused
    (not JSON) unless ``allow_nan`` (provenance documents that always allowed it)."""
    text = json.dumps(obj, sort_keys=True, indent=2, allow_nan=allow_nan, default=_json_default)
    write_text(path, text + "\n")


def write_csv(path: Path, rows: Sequence[dict], fieldnames: Sequence[str], *, delimiter: str = ",") -> None:
    """Dict rows under a header line, ``\\n`` line endings."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fieldnames), delimiter=delimiter, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buf.getvalue())


def write_tsv(path: Path, table) -> None:
    """A pandas DataFrame as tab-separated text without its index, ``\\n`` line endings."""
    write_text(path, table.to_csv(sep="\t", index=False, lineterminator="\n"))


def save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_file(path, needed=int(array.nbytes)) as tmp, open(tmp, "wb") as fh:
        np.save(fh, np.ascontiguousarray(array))


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    write_bytes(path, buf.getvalue())


def save_torch(path: Path, obj: Any) -> None:
    import torch  # only the writers that need it pay for the import

    buf = io.BytesIO()
    torch.save(obj, buf)
    write_bytes(path, buf.getvalue())
