"""Ordered, memory-bounded parallel map for the prepare stage.

Decoding and resizing dominate prepare time, so items are decoded in worker processes while the
parent writes the returned rows to the store in item order. Only `max_inflight` chunks are ever
submitted ahead of the writer, so memory is bounded by a few chunks of store rows, not the dataset.
With `workers <= 1` the very same functions run in-process: the output is identical either way.
"""
from __future__ import annotations

import gc
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from itertools import islice
from typing import Any

_CONTEXT: dict[str, Any] = {}


def _init_worker(open_context: Callable[[], Any]) -> None:
    # Workers decode one image at a time: keep BLAS/OpenMP pools from oversubscribing the cores.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _CONTEXT["ctx"] = open_context()


def _run_chunk(fn: Callable[[Any, Any], Any], chunk: list) -> list:
    ctx = _CONTEXT["ctx"]
    return [fn(ctx, item) for item in chunk]


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def ordered_map(fn: Callable[[Any, Any], Any], items: Iterable, *, open_context: Callable[[], Any],
                workers: int = 1, chunk_size: int = 8, max_inflight: int | None = None) -> Iterator[Any]:
    """Yield `fn(ctx, item)` for every item, in order; `ctx = open_context()` once per process.

    `fn` and `open_context` must be module-level (picklable) callables. Worker processes are forked
    (no re-import of the Snakemake script); platforms without fork run serially.
    """
    if workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        ctx = open_context()
        try:
            for item in items:
                yield fn(ctx, item)
        finally:
            close = getattr(ctx, "close", None)
            if close is not None:
                close()
        return
    max_inflight = max_inflight or 2 * workers
    chunks = _chunks(items, chunk_size)
    # Freeze the parent's objects so the children's garbage collector does not touch (and copy)
    # the pages holding the parent's index of the dataset.
    gc.collect()
    gc.freeze()
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                                 initializer=_init_worker, initargs=(open_context,)) as pool:
            pending = deque(pool.submit(_run_chunk, fn, c) for c in islice(chunks, max_inflight))
            while pending:
                results = pending.popleft().result()
                nxt = next(chunks, None)
                if nxt is not None:
                    pending.append(pool.submit(_run_chunk, fn, nxt))
                yield from results
    finally:
        gc.unfreeze()
