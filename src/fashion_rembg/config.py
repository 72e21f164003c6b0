"""Config → experiment table. One flat, fully specified dict per experiment.

Rules receive these dicts as `params`, so Snakemake's params trigger reruns exactly the
experiments whose values changed. Ids are readable and stable: they name the compared
axes only; hyper-parameters shared by all experiments of a task live in the dict, not the id.
"""
from __future__ import annotations

from typing import Any

from .errors import ConfigError

TASK_DATASETS = {"classification": ("fashionstyle14",), "segmentation": ("modanet",)}
VARIANTS = ("original", "rembg")


def _variant_fields(variant: str, saliency: dict) -> dict[str, Any]:
    if variant == "rembg":
        return {"variant": "rembg", "sod": saliency["model"], "fill": saliency["fill"]}
    if variant == "original":
        return {"variant": "original", "sod": None, "fill": None}
    raise ConfigError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")


def experiment_id(exp: dict[str, Any]) -> str:
    parts = [exp["dataset"], exp["arch"]]
    if exp["task"] == "segmentation":
        parts.append(exp["encoder"])
    parts.append(exp["variant"])
    if exp["variant"] == "rembg":
        parts += [exp["sod"], exp["fill"]]
    return "-".join(str(p) for p in parts)


def task_experiments(config: dict, task: str) -> list[dict[str, Any]]:
    section = config.get(task) or {}
    if not section.get("enabled", True):
        return []
    dataset = section["dataset"]
    if dataset not in TASK_DATASETS[task]:
        raise ConfigError(
            f"{task}.dataset: {dataset!r} is not a {task} dataset; choose from {TASK_DATASETS[task]}"
        )
    experiments = []
    for arch in section["architectures"]:
        for variant in section["variants"]:
            exp = {"task": task, "dataset": dataset, "arch": arch}
            if task == "segmentation":
                exp["encoder"] = section["encoder"]
            exp.update(_variant_fields(variant, config["saliency"]))
            exp.update(section["training"])
            if task == "classification":
                exp.update(section["model"])
            exp["id"] = experiment_id(exp)
            experiments.append(exp)
    ids = [e["id"] for e in experiments]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ConfigError(f"{task}: duplicate experiments {duplicates}; remove repeated list entries")
    return experiments


def experiment_table(config: dict) -> dict[str, dict[str, Any]]:
    """All experiments of all enabled tasks, keyed by id."""
    table: dict[str, dict[str, Any]] = {}
    for task in TASK_DATASETS:
        for exp in task_experiments(config, task):
            table[exp["id"]] = exp
    return table


def seeds(config: dict, task: str) -> list[int]:
    return list(config[task]["seeds"])
