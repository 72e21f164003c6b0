"""Resources of the heavy jobs from the config, and training time limits from measured throughput.

A SLURM user sets `compute` (and `compute.classification` / `compute.segmentation` overrides) and never
edits a rule; sbatch options (partition, account, constraint, gpu_model) stay in the profile.

A training job's `runtime` (its SLURM time limit) is estimated, not flat: epochs × images per epoch
÷ the architecture's training images/s on the device kind (`benchmarks/throughput.tsv`, scaled by
input pixels), times `compute.runtime_safety`, plus `compute.runtime_overhead` minutes for start-up and
evaluation of the val split, and × the attempt (a retry after a time-limit kill gets more time and
resumes from its checkpoint). Honest limits let SLURM's backfill start jobs sooner.
"""
from __future__ import annotations

import csv
import functools
import math
import os
from collections.abc import MutableMapping
from pathlib import Path

from .errors import PipelineError

TASK_KEYS = ("gpu", "threads_per_job", "mem_mb", "runtime")
# Train + val images per dataset before its manifest exists (the published sizes: an upper bound).
PUBLISHED_IMAGES = {"fashionstyle14": 13_126, "modanet": 55_176, "fashionpedia": 46_781}
VAL_COST = 1 / 3  # a val image (forward only) costs about a third of a training step
THROUGHPUT_FIELDS = ("device_kind", "task", "arch", "height", "width", "images_per_s", "device", "source")


# Snakemake `priority:` (higher starts first when cores are short). Without priorities the scheduler
# prefers jobs with large inputs: trainings on big stores started before the cheap data and mask jobs
# that unlock other work, and a long training could start last (measured on the 2-core demo: one core
# idle for ~200 of 800 s). Pipeline jobs go first, then runs by expected length (longest first).
PIPELINE_PRIORITY = 1000
CRITICAL_PRIORITY = PIPELINE_PRIORITY + 10  # demo data and stand-in saliency model: every mask waits for them
UNKNOWN_RUN_PRIORITY = PIPELINE_PRIORITY - 1  # no throughput row (e.g. Mask R-CNN): assume long


def run_priority(estimate: dict) -> int:
    """Priority of a run job from its ``training_estimate``: expected training seconds, capped below
    PIPELINE_PRIORITY."""
    if estimate["expected_min"] is None:
        return UNKNOWN_RUN_PRIORITY
    return min(int(round(estimate["expected_min"] * 60)), UNKNOWN_RUN_PRIORITY)


class ThroughputError(PipelineError, ValueError):
    """benchmarks/throughput.tsv is malformed."""


def task_compute(compute: dict, task: str) -> dict:
    """`compute` with the task's overrides (`compute.<task>.<key>`, null = inherit) applied."""
    merged = {key: compute[key] for key in TASK_KEYS}
    merged.update({k: v for k, v in (compute.get(task) or {}).items() if v is not None})
    return merged


def device_kind(compute: dict, task: str) -> str:
    kind = compute.get("device_kind", "auto")
    if kind != "auto":
        return kind
    return "gpu" if task_compute(compute, task)["gpu"] > 0 else "cpu"


@functools.lru_cache(maxsize=8)
def read_throughput(path: str) -> dict[tuple[str, str, str], tuple[int, float, str]]:
    """(device_kind, task, arch) → (pixels, images/s, source) from the throughput table."""
    table = {}
    try:
        with open(path, newline="") as handle:
            for line, row in enumerate(csv.DictReader(handle, delimiter="\t"), start=2):
                try:
                    key = (row["device_kind"], row["task"], row["arch"])
                    table[key] = (int(row["height"]) * int(row["width"]), float(row["images_per_s"]), row["source"])
                except (KeyError, TypeError, ValueError) as err:
                    raise ThroughputError(f"{path} line {line}: expected columns {', '.join(THROUGHPUT_FIELDS)} "
                                          f"with numbers in height/width/images_per_s ({err})") from None
    except FileNotFoundError:
        return {}
    return table


def model_names(exp: dict) -> list[str]:
    """The throughput table's arch keys, most specific first (shallow_cnn-w32b3, then shallow_cnn)."""
    if exp.get("encoder"):
        return [f"{exp['arch']}-{exp['encoder']}"]
    if exp.get("width") and exp.get("blocks"):
        return [f"{exp['arch']}-w{exp['width']}b{exp['blocks']}", exp["arch"]]
    return [exp["arch"]]


def input_pixels(exp: dict, store_size) -> int:
    height, width = exp.get("input_size") or store_size
    return int(height) * int(width)


@functools.lru_cache(maxsize=16)
def _split_counts(manifest: str) -> tuple[int, int] | None:
    try:
        with open(manifest, newline="") as handle:
            splits = [row.get("split") for row in csv.DictReader(handle, delimiter="\t")]
    except FileNotFoundError:
        return None
    return splits.count("train"), splits.count("val")


def epoch_images(dataset: str, manifest: str | Path) -> tuple[float, str]:
    """Training-step equivalents per epoch: train + VAL_COST × val images (published size before prepare)."""
    counts = _split_counts(str(manifest))
    if counts is None:
        return float(PUBLISHED_IMAGES.get(dataset, 0)), f"{dataset}: published size (not prepared yet)"
    train, val = counts
    return train + VAL_COST * val, f"{dataset}: {train} train + {val} val images"


def training_estimate(compute: dict, task: str, exp: dict, store_size, dataset: str, manifest: str | Path,
                      table_path: str | Path) -> dict:
    """Expected training minutes of one job and the time limit it declares (attempt 1)."""
    merged = task_compute(compute, task)
    kind = device_kind(compute, task)
    images, data_note = epoch_images(dataset, manifest)
    table = read_throughput(str(table_path))
    names = model_names(exp)
    row = next((table[key] for key in ((kind, task, name) for name in names) if key in table), None)
    result = {"task": task, "arch": names[0], "device_kind": kind, "epochs": exp["epochs"], "data": data_note}
    if row is None or images == 0:
        why = f"no {kind} throughput for {task}/{names[0]} in {table_path}" if row is None else "unknown size"
        fallback = merged["runtime"] if merged["runtime"] != "auto" else compute["runtime_fallback"]
        return {**result, "expected_min": None, "limit_min": int(fallback), "how": why}
    pixels, rate, source = row
    rate *= pixels / input_pixels(exp, store_size)  # conv nets: cost ∝ input pixels
    expected = exp["epochs"] * images / rate / 60
    limit = math.ceil(expected * compute["runtime_safety"] + compute["runtime_overhead"])
    if merged["runtime"] != "auto":
        limit = int(merged["runtime"])
    return {**result, "expected_min": expected, "limit_min": limit, "how": f"{rate:.1f} images/s ({source})"}


# glibc malloc with its default (dynamic) thresholds hands a training step's freed tensor buffers back
# to the kernel and faults them in again on the next step. Fixed thresholds keep buffers below 32 MiB in
# the heap and never trim it: a demo shallow-CNN job 29.8 -> 24.7 CPU-s (sys 4.7 -> 0.9 s), the same
# bytes out, RSS +4 % (benchmarks/malloc_env.py). Either variable alone was worse than neither.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(4 * 2**30)}


def set_job_environment(environ: MutableMapping[str, str] = os.environ) -> bool:
    """Give the jobs Snakemake starts (subprocesses locally; sbatch passes the environment on) the
    malloc thresholds, unless the user set either of them. Returns whether they were set."""
    if any(key in environ for key in MALLOC_ENV):
        return False
    environ.update(MALLOC_ENV)
    return True
