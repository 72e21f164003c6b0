"""Glue between Snakemake `script:` files and the package: logging and clear failures."""
from __future__ import annotations

import contextlib
import logging
import sys
import threading
import traceback
from pathlib import Path

from .errors import PipelineError


@contextlib.contextmanager
def log_to(log_path: str | Path):
    """Send stdout, stderr and `logging` of a job to its Snakemake log.

    A PipelineError is reported as its message only (it already says what to do);
    anything else keeps its traceback, since that is a bug worth reading.
    """
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w", buffering=1) as log_file:
        old_out, old_err = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = log_file
        handler = logging.StreamHandler(log_file)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        try:
            yield
        except PipelineError as err:
            print(f"ERROR: {err}", file=log_file)
            print(f"ERROR: {err}", file=old_err)
            raise SystemExit(1) from None
        except BaseException:
            traceback.print_exc(file=log_file)
            raise
        finally:
            root.removeHandler(handler)
            sys.stdout, sys.stderr = old_out, old_err


def cancel_scheduler_timers() -> int:
    """Cancel Snakemake's pending scheduler re-evaluation timers; returns how many.

    Snakemake's scheduler ends every round by arming a ``threading.Timer`` of one
    ``max-jobs-per-timespan`` period that starts another round, which arms another timer: each
    finished job adds such a chain for the rest of the run. The profiles set a 10-s period so the
    chains cost little (at the default 1 s the demo ran 30,000 rounds, ~60 CPU-s); the timers are
    not daemon threads, so without this the finished workflow would wait up to one period to exit.
    Called from ``onsuccess`` / ``onerror``, when no round is needed any more; a Snakemake whose
    timers look different is left alone (the exit then only waits).
    """
    cancelled = 0
    for thread in threading.enumerate():
        function = getattr(thread, "function", None)
        if isinstance(thread, threading.Timer) and "_schedule_reevalutation" in getattr(function, "__qualname__", ""):
            thread.cancel()
            cancelled += 1
    return cancelled
