"""Moved to :mod:`fashion_rembg.atomic`. Thin re-export for importers in areas restructured in
parallel (reporting/); remove once they import ``fashion_rembg.atomic``."""
from .atomic import atomic_file, atomic_npy, explain_write_errors

__all__ = ["atomic_file", "atomic_npy", "explain_write_errors"]
