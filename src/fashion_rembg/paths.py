"""Where every file of the pipeline lives: one function per output family, and the inputs the
rules compute from the config.

Rules call these with wildcard placeholders (``store("{dataset}", "images.npy")``) or with values;
scripts receive the keys (dataset, sod, fill, experiment, seed) as ``params``/wildcards, never by
taking a path apart. Import order: errors → choices/registries → config → paths → preflight.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .choices import ORACLE_SOD
from .config import experiment_table, is_segmentation_dataset
from .errors import ConfigError
from .saliency.registry import DERIVED_WEIGHTS, ORACLE, mask_set_spec, registry_models

RESULTS = "results"
# {sod} of the rembg mask rules: any mask-set name but 'oracle' (the true masks have their own rule).
REMBG_SOD_PATTERN = r"(?!oracle/)[A-Za-z0-9][A-Za-z0-9_.\-]*"


# ----------------------------------------------------------------------------- output families


def store(dataset: str, name: str) -> str:
    """A prepared store's file: images.npy, manifest.tsv, quarantine.tsv, classes.json, classmaps.npy, truth.npy."""
    return f"{RESULTS}/data/{dataset}/{name}"


def mask_set(dataset: str, sod: str, name: str = "masks.npy") -> str:
    """A mask set's file: masks.npy, session.json, quality.json (sod 'oracle': the true masks)."""
    return f"{RESULTS}/saliency/{dataset}/{sod}/{name}"


def shard_plan(dataset: str) -> str:
    """The shards every mask set of a dataset is computed in (the saliency_plan checkpoint)."""
    return f"{RESULTS}/saliency/{dataset}/shards.json"


def mask_shard(dataset: str, sod: str, start, stop, ext: str) -> str:
    return mask_set(dataset, sod, f"shards/{start}-{stop}{ext}")


def composite(dataset: str, sod: str, fill: str) -> str:
    """The composite image store of a mask set over a fill (sod 'oracle': the true masks)."""
    return f"{RESULTS}/rembg/{dataset}/{sod}/{fill}/images.npy"


def run_file(task: str, exp: str, seed, name: str) -> str:
    """A file of one (experiment, seed) run: model.pt, history.csv, metrics.json, predictions.npz."""
    return f"{RESULTS}/runs/{task}/{exp}/seed-{seed}/{name}"


def run_checkpoint(task: str, exp: str, seed) -> str:
    """Resume state of a run (not an output: Snakemake must not delete it when the job fails)."""
    return f"{RESULTS}/checkpoints/{task}/{exp}/seed-{seed}"


def table(name: str) -> str:
    return f"{RESULTS}/tables/{name}"


def figure(name: str) -> str:
    return f"{RESULTS}/figures/{name}"


def mask_quality_figure(dataset: str, sod: str) -> str:
    return figure(f"mask_quality/{dataset}/{sod}.png")


# ----------------------------------------------------------------------------- inputs from the config


def condition_images(dataset: str, cond: dict[str, Any]) -> str:
    """The image store of a condition (original store, rembg or oracle composite)."""
    if cond["variant"] == "original":
        return store(dataset, "images.npy")
    sod = ORACLE_SOD if cond["variant"] == "oracle" else cond["sod"]
    return composite(dataset, sod, cond["fill"])


def quality_inputs(config: dict, dataset: str) -> dict[str, str]:
    """References for mask quality: true masks (demo) and/or class maps (segmentation datasets)."""
    refs = {}
    if (config["datasets"].get(dataset) or {}).get("truth"):
        refs["truth"] = store(dataset, "truth.npy")
    if is_segmentation_dataset(config, dataset):
        refs["classmaps"] = store(dataset, "classmaps.npy")
    return refs


def shard_paths(plan_json: str, dataset: str, sod: str, ext: str) -> list[str]:
    """Shard files of a mask set listed by the shard plan (the saliency_plan checkpoint's output)."""
    plan = json.loads(Path(plan_json).read_text())
    return [mask_shard(dataset, sod, a, b, ext) for a, b in plan["shards"]]


def photo_mask_settings(config: dict, sources: dict, dataset: str) -> dict | None:
    """What a mask shard job needs to re-read the raw photos behind a store (None: mask_input store)."""
    if config["saliency"].get("mask_input", "store") != "photo":
        return None
    if dataset not in sources:
        raise ConfigError(f"saliency.mask_input photo: datasets.{dataset} has no raw inputs to read photos from")
    ds = config["datasets"][dataset]
    # A control set is read like the dataset it varies (fashion_rembg.controls).
    return {"dataset": ds.get("reader", dataset), "inputs": dict(sources[dataset].inputs),
            "manifest": store(dataset, "manifest.tsv"), "store_size": list(ds["store_size"]),
            "fit": ds.get("fit", "cover")}  # fmt: skip


def photo_mask_inputs(config: dict, sources: dict, dataset: str) -> dict[str, str | list[str]]:
    """Extra inputs of a mask shard job with saliency.mask_input photo: the store's manifest and the
    raw inputs of the dataset's prepare step (none with mask_input store)."""
    settings = photo_mask_settings(config, sources, dataset)
    if settings is None:
        return {}
    return {"manifest": settings["manifest"], **{f"raw_{k}": v for k, v in settings["inputs"].items()}}


def mask_run_settings(config: dict) -> dict:
    """Mask-job settings that do not change the masks' values' meaning (still tracked as params)."""
    s = config["saliency"]
    return {"device": s["device"], "batch_size": s["batch_size"], "verify_checksums": s["verify_checksums"]}


# ----------------------------------------------------------------------------- weights


def rembg_model_pattern() -> str:
    """Wildcard regex of the rembg models the fetch rule can provide."""
    return "|".join(re.escape(m) for m in registry_models())


def fetch_inputs(config: dict, model: str) -> list[str]:
    """birefnet-general-fp16 is converted from birefnet-general; other models have no input."""
    if model in DERIVED_WEIGHTS:
        return [str(Path(config["saliency"]["model_home"]) / f"{DERIVED_WEIGHTS[model]}.onnx")]
    return []


def sod_spec(config: dict, name: str) -> dict:
    """Validate a `{sod}` name (mask set, custom model, rembg model or 'oracle') and return its spec.

    The spec (see `fashion_rembg.saliency.registry.mask_set_spec`) is JSON-able; raises
    ConfigError naming the key and the valid choices.
    """
    return mask_set_spec(config, name)


def weights_path(config: dict, spec: dict) -> str:
    """The ONNX file a (non-oracle) mask-set spec loads, inside the rembg model home."""
    home = Path(config["saliency"]["model_home"])
    if spec["kind"] == "registry":
        # rembg >= 2.0.80 layout, when the user placed weights there by hand.
        nested = home / "models" / spec["model"] / f"{spec['model']}.onnx"
        if nested.is_file():
            return str(nested)
    return str(home / spec["file"])


def sod_model_path(config: dict, name: str) -> str:
    """Where the ONNX weights of mask set `name` live inside the rembg model home."""
    spec = sod_spec(config, name)
    if spec["kind"] == ORACLE:
        raise ConfigError(f"mask set '{ORACLE}' is the true masks; it has no rembg model")
    return weights_path(config, spec)


def pretrained_file(config: dict, exp: dict[str, Any]) -> str | None:
    """The torchvision weights file an ``init: imagenet`` (or instance ``init: coco``) experiment
    loads (None for scratch)."""
    from .models.weights import COCO_WEIGHT_FILES, torchvision_arch, weights_file  # static tables, no torch

    if exp.get("init") == "coco":
        return f"{config['compute']['torch_home']}/hub/checkpoints/{COCO_WEIGHT_FILES[exp['arch']]}"
    if exp.get("init") != "imagenet":
        return None

    return str(weights_file(config["compute"]["torch_home"], torchvision_arch(exp)))


def pretrained_files(config: dict) -> list[str]:
    """Every weights file the configured experiments load."""
    return sorted({p for exp in experiment_table(config).values() if (p := pretrained_file(config, exp))})


def file_pattern(paths) -> str:
    """Wildcard constraint matching exactly the base names of ``paths``."""
    return "|".join(re.escape(Path(p).name) for p in paths) or "NO_FILE"
