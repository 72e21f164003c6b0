"""Glue between Snakemake `script:` files and the package: logging and clear failures."""
from __future__ import annotations

import contextlib
import logging
import sys
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
