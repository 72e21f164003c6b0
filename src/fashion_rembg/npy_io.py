"""Moved to :mod:`fashion_rembg.atomic`. Nothing in this branch imports this module any more; it
stays only so branches restructured in parallel (reporting/, datasets/demo) still import after
merging. Remove it once they import ``fashion_rembg.atomic``."""
from .atomic import atomic_file, atomic_npy, explain_write_errors

__all__ = ["atomic_file", "atomic_npy", "explain_write_errors"]
