"""Config → experiment table. One flat, fully specified dict per experiment.

Each task section declares a grid: every axis holds a value or a list of values, lists expand
as a product; ``exclude`` rows drop combinations of the product, ``include`` rows add sub-grids
(the grid with some axes replaced, optionally with their own ``seeds``).

Rules receive the experiment dicts as ``params``. Ids are a readable prefix (dataset, arch,
init, augmentation, image condition) plus a short hash of the whole spec. The hash makes ids
depend on the experiment's own values only, never on the rest of the grid: adding an axis value
or an include row leaves every existing id (and its results) untouched, changing one
experiment's value gives it a new id (only its jobs and the aggregates run), and switching back
finds the old results again.

This module is imported while Snakemake builds the DAG: it must stay free of torch imports.
Slightly over 500 lines on purpose: the axis types, the expansion and the ids are one contract (an
id hashes exactly what the expansion normalised), so they stay together.
"""
from __future__ import annotations

import copy
import hashlib
import itertools
import json
import re
from dataclasses import dataclass
from typing import Any, Callable

from .choices import (
    BN_TOGGLE_ARCHS,
    CLASSIFIER_ARCHS,
    FILLS,
    INITS,
    INSTANCE_ARCHS,
    INSTANCE_INITS,
    OPTIMIZERS,
    ORACLE_SOD,
    SCHEDULES,
    SEGMENTATION_ENCODERS,
    SEGMENTERS,
    TASK_DATASETS,
    TASKS,
    VARIANTS,
    canonical_augment,
    check_name,
)
from .errors import ConfigError
from .saliency.registry import mask_set_spec

HASH_CHARS = 6
_TOKEN = re.compile(r"[^A-Za-z0-9_]+")


# ----------------------------------------------------------------------------- axis types


def _choice(options: tuple[str, ...]) -> Callable[[Any, str], str]:
    def norm(value, where):
        if value not in options:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(options)}")
        return value

    return norm


def _augment(value, where):
    try:
        return canonical_augment(value)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


def _name(value, where):
    return check_name(value, where)


def _known_name(kind: str, names: tuple[str, ...]) -> Callable[[Any, str], str]:
    """A name from a fixed list (architectures, encoders), refused at start-up with suggestions."""

    def norm(value, where):
        if value not in names:
            import difflib

            close = difflib.get_close_matches(str(value), names, n=5)
            hint = f"did you mean {', '.join(close)}?" if close else f"choose from {', '.join(names[:12])}, ..."
            raise ConfigError(f"{where}: unknown {kind} {value!r}; {hint}")
        return value

    return norm


def _opt_name(value, where):
    return None if value is None else _name(value, where)


def _int(minimum: int, maximum: int | None = None):
    def norm(value, where):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (
            maximum is not None and value > maximum
        ):
            bounds = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
            raise ConfigError(f"{where}: expected an integer {bounds}, got {value!r}")
        return int(value)

    return norm


def _float(minimum: float, maximum: float, *, open_min: bool = False, optional: bool = False):
    def norm(value, where):
        if value is None and optional:
            return None
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = ok and (value > minimum if open_min else value >= minimum) and value <= maximum
        if not ok:
            bounds = f"{'(' if open_min else '['}{minimum}, {maximum}]"
            raise ConfigError(f"{where}: expected a number in {bounds}, got {value!r}")
        return float(value)

    return norm


def _bool(value, where):
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    return value


def _size(value, where):
    """null (the store size), a side (square) or [height, width]."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value, value]
    if (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and 16 <= v <= 2048 for v in value)
    ):
        return [int(value[0]), int(value[1])]
    raise ConfigError(f"{where}: expected null, a side in [16, 2048] or [height, width], got {value!r}")


def _store_size_only(value, where):
    if value is not None:
        raise ConfigError(f"{where}: instance runs train at the store size (boxes and masks are not resized); "
                          "set datasets.<name>.store_size instead, or null")
    return None


@dataclass(frozen=True)
class Axis:
    default: Any
    norm: Callable[[Any, str], Any]


COMMON_AXES = {
    "init": Axis("scratch", _choice(INITS)),
    "variant": Axis("original", _choice(VARIANTS)),
    "sod": Axis(None, _opt_name),
    "fill": Axis(None, _opt_name),
    "augment": Axis("flip", _augment),
    "optimizer": Axis("adamw", _choice(OPTIMIZERS)),
    "lr": Axis(0.001, _float(0.0, 10.0, open_min=True)),
    "schedule": Axis("cosine", _choice(SCHEDULES)),
    "weight_decay": Axis(0.0001, _float(0.0, 1.0)),
    "epochs": Axis(8, _int(1)),
    "batch_size": Axis(32, _int(1)),
    "input_size": Axis(None, _size),
    "early_stopping": Axis(0, _int(0)),
    "amp": Axis(True, _bool),
}
AXES: dict[str, dict[str, Axis]] = {
    "classification": {
        "arch": Axis("shallow_cnn", _known_name("classifier architecture", CLASSIFIER_ARCHS)),
        "width": Axis(32, _int(4, 1024)),
        "blocks": Axis(3, _int(2, 4)),
        "batch_norm": Axis(True, _bool),
        "dropout": Axis(None, _float(0.0, 0.9, optional=True)),
        "label_smoothing": Axis(0.0, _float(0.0, 0.5)),
        **COMMON_AXES,
    },
    "segmentation": {
        "arch": Axis("unet", _choice(SEGMENTERS)),
        "encoder": Axis("resnet18", _known_name("segmentation encoder", SEGMENTATION_ENCODERS)),
        **COMMON_AXES,
        "batch_size": Axis(8, _int(1)),
    },
    # Mask R-CNN (torchvision's detection references: SGD, no augmentation, step schedule).
    "instance": {
        "arch": Axis("maskrcnn_resnet18_fpn", _choice(INSTANCE_ARCHS)),
        **COMMON_AXES,
        "init": Axis("scratch", _choice(INSTANCE_INITS)),
        "augment": Axis("none", _choice(("none",))),
        "optimizer": Axis("sgd", _choice(OPTIMIZERS)),
        "lr": Axis(0.01, _float(0.0, 10.0, open_min=True)),
        "schedule": Axis("step", _choice(SCHEDULES)),
        "batch_size": Axis(4, _int(1)),
        "input_size": Axis(None, _store_size_only),
    },
}
# Keys an include row may carry besides axes.
ROW_KEYS = ("seeds",)


# ----------------------------------------------------------------------------- expansion


def _values(axis: str, value) -> list:
    """A grid entry as a list of candidate values (input_size [h, w] is one value)."""
    if axis == "input_size" and isinstance(value, list) and len(value) == 2 and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        return [value]
    if isinstance(value, list):
        if not value:
            raise ConfigError(f"grid axis {axis!r}: empty list (give at least one value)")
        return value
    return [value]


def _check_keys(row: dict, task: str, where: str, extra: tuple[str, ...] = ()) -> None:
    if not isinstance(row, dict):
        raise ConfigError(f"{where}: expected a mapping of axis: value, got {row!r}")
    unknown = sorted(set(row) - set(AXES[task]) - set(extra))
    if unknown:
        raise ConfigError(f"{where}: unknown axis {unknown}; {task} axes are {', '.join(AXES[task])}")


def _product(grid: dict[str, Any], task: str) -> list[dict[str, Any]]:
    axes = list(AXES[task])
    return [dict(zip(axes, combo)) for combo in itertools.product(*(_values(a, grid[a]) for a in axes))]


def _matches(combo: dict, row: dict, task: str, where: str) -> bool:
    for axis, wanted in row.items():
        norm = AXES[task][axis].norm
        options = [norm(v, f"{where}.{axis}") for v in _values(axis, wanted)]
        if norm(combo[axis], f"{where}.{axis}") not in options:
            return False
    return True


def _torchvision_weights():
    from .models.weights import weights_url  # light: a static table, no torch

    return weights_url


def _coco_weight_files() -> dict[str, str]:
    from .models.weights import COCO_WEIGHT_FILES  # a static table, no torch

    return COCO_WEIGHT_FILES


def _normalise(combo: dict, task: str, where: str, config: dict) -> dict[str, Any]:
    """A raw grid combination → canonical spec (fields that do not apply become None)."""
    spec = {axis: AXES[task][axis].norm(value, f"{where}.{axis}") for axis, value in combo.items()}
    saliency = config["saliency"]
    variant = spec["variant"]
    if variant == "original":
        spec["sod"] = spec["fill"] = None
    else:
        spec["sod"] = None if variant == "oracle" else (spec["sod"] or saliency["model"])
        spec["fill"] = spec["fill"] or saliency["fill"]
        _check_fill(spec["fill"], f"{where}.fill")
        if spec["sod"] is not None:
            _check_sod(config, spec["sod"], f"{where}.sod")
    if task == "classification":
        arch = spec["arch"]
        if arch != "shallow_cnn":
            spec["width"] = spec["blocks"] = None
        if arch not in BN_TOGGLE_ARCHS:
            spec["batch_norm"] = None
        if spec["init"] == "imagenet":
            tv_arch = f"{arch}_bn" if arch.startswith("vgg") and spec["batch_norm"] else arch
            if _torchvision_weights()(tv_arch) is None:
                raise ConfigError(
                    f"{where}: arch {arch!r} has no torchvision ImageNet weights; use init: scratch for it "
                    f"(e.g. an exclude row {{arch: {arch}, init: imagenet}})"
                )
    elif task == "instance":
        if spec["init"] == "coco" and spec["arch"] not in _coco_weight_files():
            raise ConfigError(f"{where}: init: coco needs torchvision's COCO Mask R-CNN weights, which exist for "
                              f"{', '.join(sorted(_coco_weight_files()))} only, not {spec['arch']!r}; use init: "
                              "imagenet or scratch for it")  # fmt: skip
    else:
        if spec["init"] == "imagenet" and not spec["encoder"].startswith(("resnet", "resnext")):
            raise ConfigError(
                f"{where}: init: imagenet for segmentation loads torchvision weights into the encoder and "
                f"supports resnet/resnext encoders only, got encoder {spec['encoder']!r}"
            )
        size = spec["input_size"]
        if size is not None and (size[0] % 32 or size[1] % 32):
            raise ConfigError(f"{where}.input_size: segmentation needs multiples of 32, got {size}")
    return spec


def _check_sod(config: dict, sod: str, where: str) -> None:
    if sod == ORACLE_SOD:
        raise ConfigError(f"{where}: 'oracle' is the true masks; use variant: oracle instead of sod: oracle")
    try:
        mask_set_spec(config, sod)  # the saliency registry owns the mask-set names
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


def _check_fill(fill: str, where: str) -> None:
    if fill not in FILLS:
        raise ConfigError(f"{where}: unknown fill {fill!r}; choose from {', '.join(FILLS)}")


def _token(value) -> str:
    return _TOKEN.sub("_", str(value)).strip("_") or "x"


def condition_key(variant: str, sod: str | None = None, fill: str | None = None) -> str:
    """File-name-safe name of an image condition: original, rembg-<sod>-<fill>, oracle-<fill>."""
    if variant == "original":
        return "original"
    if variant == "oracle":
        return f"oracle-{_token(fill)}"
    return f"rembg-{_token(sod)}-{_token(fill)}"


def spec_hash(exp: dict[str, Any]) -> str:
    canonical = json.dumps({k: v for k, v in exp.items() if k != "id"}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(canonical.encode()).hexdigest()[:HASH_CHARS]


def experiment_id(exp: dict[str, Any]) -> str:
    parts = [exp["dataset"], exp["arch"]]
    if exp.get("blocks") is not None:  # shallow_cnn shape
        parts.append(f"w{exp['width']}b{exp['blocks']}")
    if exp["task"] == "segmentation":
        parts.append(exp["encoder"])
    if exp.get("batch_norm") is not None:
        parts.append("bn" if exp["batch_norm"] else "nobn")
    parts = [_token(p) for p in parts + [exp["init"], exp["augment"]]]
    parts += [condition_key(exp["variant"], exp["sod"], exp["fill"]), spec_hash(exp)]
    return "-".join(parts)


def _seeds(value, where: str) -> list[int]:
    if not isinstance(value, list) or not value or any(
        isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in value
    ):
        raise ConfigError(f"{where}: expected a non-empty list of integers >= 0, got {value!r}")
    if len(set(value)) != len(value):
        raise ConfigError(f"{where}: repeated seeds in {value}")
    return list(value)


def task_datasets(config: dict, task: str) -> tuple[str, ...]:
    """Datasets a task may use: the built-in ones and the own datasets of its kind (datasets/own.py)."""
    from .datasets.own import task_names

    return TASK_DATASETS[task] + tuple(task_names(config, task))


def is_segmentation_dataset(config: dict, dataset: str) -> bool:
    return dataset in task_datasets(config, "segmentation")


def _section(config: dict, task: str) -> dict | None:
    if task == "instance" and not config.get(task):  # opt-in: configs without the section run none
        return None
    section = config.get(task) or {}
    if not section.get("enabled", True):
        return None
    dataset = section.get("dataset", TASK_DATASETS[task][0])
    if dataset not in task_datasets(config, task):
        raise ConfigError(f"{task}.dataset: {dataset!r} is not a {task} dataset; choose from "
                          f"{', '.join(task_datasets(config, task))} (own data: a datasets.{dataset} entry with "
                          f"kind: {'imagefolder' if task == 'classification' else 'coco'})")
    return section


_CACHE: dict[str, list] = {}


def expand_task(config: dict, task: str) -> list[tuple[dict[str, Any], list[int]]]:
    """``(experiment, seeds)`` of one task, in config order, duplicates merged."""
    # Snakefile helpers ask several times while the DAG is built; expand once per config.
    key = json.dumps([task, config.get(task), config.get("saliency"), config.get("datasets"), config.get("controls"),
                      (config.get("demo") or {}).get("enabled")], sort_keys=True,
                     default=str)  # fmt: skip
    if key not in _CACHE:
        _CACHE[key] = _expand_task(config, task)
    return copy.deepcopy(_CACHE[key])


def _expand_task(config: dict, task: str) -> list[tuple[dict[str, Any], list[int]]]:
    section = _section(config, task)
    if section is None:
        return []
    dataset = section.get("dataset", TASK_DATASETS[task][0])
    grid_cfg = section.get("grid") or {}
    _check_keys(grid_cfg, task, f"{task}.grid")
    grid = {axis: spec.default for axis, spec in AXES[task].items()} | grid_cfg
    seeds = _seeds(section.get("seeds", [0, 1, 2]), f"{task}.seeds")

    excludes = section.get("exclude") or []
    for i, row in enumerate(excludes):
        _check_keys(row, task, f"{task}.exclude[{i}]")
    sources: list[tuple[str, dict, list[int], str]] = []
    for combo in _product(grid, task):
        if not any(_matches(combo, row, task, f"{task}.exclude[{i}]") for i, row in enumerate(excludes)):
            sources.append((f"{task}.grid", combo, seeds, dataset))
    for i, row in enumerate(section.get("include") or []):
        where = f"{task}.include[{i}]"
        _check_keys(row, task, where, ROW_KEYS)
        row_seeds = _seeds(row["seeds"], f"{where}.seeds") if "seeds" in row else seeds
        sub = grid | {k: v for k, v in row.items() if k not in ROW_KEYS}
        sources += [(where, combo, row_seeds, dataset) for combo in _product(sub, task)]
    if task == "classification":
        sources += _control_sources(config, grid, seeds)

    merged: dict[str, tuple[dict, list[int]]] = {}
    for where, combo, combo_seeds, dataset in sources:
        exp = {"task": task, "dataset": dataset, **_normalise(combo, task, where, config)}
        if exp["variant"] == "oracle":
            truth = dataset_entry(config, dataset).get("truth")
            if not truth:
                raise ConfigError(
                    f"{where}: variant oracle needs true foreground masks (datasets.{dataset}.truth), "
                    f"which {dataset} does not have here; drop oracle from {where}.variant"
                )
        exp["id"] = experiment_id(exp)
        if exp["id"] in merged:
            if merged[exp["id"]][0] != exp:
                raise ConfigError(f"{task}: two experiments share the id {exp['id']!r}; change one value")
            known = merged[exp["id"]][1]
            known += [s for s in combo_seeds if s not in known]
        else:
            merged[exp["id"]] = (exp, list(combo_seeds))
    if not merged and (section.get("grid") is not None or section.get("include")):
        raise ConfigError(f"{task}: the grid, exclude and include rows leave no experiment; set enabled: false instead")
    return list(merged.values())


def dataset_entry(config: dict, name: str) -> dict:
    """``datasets.<name>``, or the entry of a generated control set (fashion_rembg.controls)."""
    from . import controls

    entry = (config.get("datasets") or {}).get(name)
    if entry is None and name.startswith(controls.PREFIX):
        entry = controls.control_datasets(config).get(name)
    return entry or {}


def _control_sources(config: dict, grid: dict, seeds: list[int]) -> list[tuple[str, dict, list[int], str]]:
    """The known-answer controls' experiments: the grid's first value of every axis, overridden."""
    from . import controls

    control_seeds = _seeds((config.get("controls") or {}).get("seeds") or seeds, "controls.seeds")
    first = {axis: _values(axis, value)[0] for axis, value in grid.items()}
    return [(where, first | overrides, control_seeds, dataset)
            for where, dataset, overrides in controls.experiment_rows(config)]


def control_runs(config: dict) -> dict[str, dict[str, Any]]:
    """``{control: {dataset, expected, clutter, bg_label_correlation, seeds, original: id, rembg: id}}``."""
    from . import controls

    section = _section(config, "classification")
    if section is None or not controls.enabled(config):
        return {}
    grid = {axis: spec.default for axis, spec in AXES["classification"].items()} | (section.get("grid") or {})
    seeds = _seeds(section.get("seeds", [0, 1, 2]), "classification.seeds")
    # Seeds as merged over the task: a control identical to a grid experiment uses all its seeds.
    merged_seeds = {exp["id"]: exp_seeds for exp, exp_seeds in expand_task(config, "classification")}
    out = {name: dict(spec) for name, spec in controls.control_sets(config).items()}
    for where, combo, _, dataset in _control_sources(config, grid, seeds):
        exp = {"task": "classification", "dataset": dataset, **_normalise(combo, "classification", where, config)}
        name = where.rsplit(".", 1)[1]
        exp_id = experiment_id(exp)
        out[name][exp["variant"]] = exp_id
        paired = merged_seeds[exp_id]
        out[name]["seeds"] = [s for s in out[name].get("seeds", paired) if s in paired]
    return out


def task_experiments(config: dict, task: str) -> list[dict[str, Any]]:
    return [exp for exp, _ in expand_task(config, task)]


def experiment_table(config: dict) -> dict[str, dict[str, Any]]:
    """All experiments of all enabled tasks, keyed by id."""
    return {exp["id"]: exp for task in TASKS for exp in task_experiments(config, task)}


def experiment_runs(config: dict) -> list[tuple[str, str, int]]:
    """Every training job: ``(task, experiment id, seed)``."""
    return [(task, exp["id"], seed) for task in TASKS for exp, seeds in expand_task(config, task) for seed in seeds]


def seeds(config: dict, task: str) -> list[int]:
    """The task's default seeds (include rows may set their own: see :func:`experiment_runs`)."""
    return list(config[task]["seeds"])


# ----------------------------------------------------------------------------- conditions and files


def condition(variant: str, sod: str | None = None, fill: str | None = None) -> dict[str, Any]:
    return {"variant": variant, "sod": sod, "fill": fill, "key": condition_key(variant, sod, fill)}


def evaluation_conditions(config: dict, exp: dict[str, Any]) -> list[dict[str, Any]]:
    """Test sets a model is evaluated on: its own condition first, then the task's ``test_on``
    (``rembg`` / ``oracle`` use saliency.model / saliency.fill)."""
    own = condition(exp["variant"], exp["sod"], exp["fill"])
    out = [own]
    saliency = config["saliency"]
    truth = dataset_entry(config, exp["dataset"]).get("truth")
    for name in (config.get(exp["task"]) or {}).get("test_on", ["original", "rembg"]):
        if name == "original":
            cond = condition("original")
        elif name == "rembg":
            cond = condition("rembg", saliency["model"], saliency["fill"])
        elif name == "oracle":
            if not truth:
                raise ConfigError(
                    f"{exp['task']}.test_on: oracle needs true foreground masks (datasets.{exp['dataset']}.truth)"
                )
            cond = condition("oracle", None, saliency["fill"])
        else:
            raise ConfigError(f"{exp['task']}.test_on: {name!r} is not one of {', '.join(VARIANTS)}")
        if cond["key"] not in {c["key"] for c in out}:
            out.append(cond)
    return out
