"""Paths and start-up checks the Snakefile needs, kept out of the rule files."""
from __future__ import annotations

import json
import re
from pathlib import Path

from .datasets.sources import missing_messages
from .errors import ConfigError
from .saliency.registry import (
    CONTRACTS,
    DERIVED_WEIGHTS,
    ORACLE,
    _check_custom,
    mask_set_spec,
    registry_models,
    validate_saliency,  # noqa: F401  (re-exported for common.smk)
    weights_checksum,
    weights_url,
)

REMBG_RELEASES = "https://github.com/danielgatis/rembg/releases/download/v0.0.0"
# {sod} of the rembg mask rules: any mask-set name but 'oracle' (the true masks have their own rule).
REMBG_SOD_PATTERN = r"(?!oracle/)[A-Za-z0-9][A-Za-z0-9_.\-]*"


def rembg_model_pattern() -> str:
    """Wildcard regex of the rembg models the fetch rule can provide."""
    return "|".join(re.escape(m) for m in registry_models())


def mask_run_settings(config: dict) -> dict:
    """Mask-job settings that do not change the masks' values' meaning (still tracked as params)."""
    s = config["saliency"]
    return {"device": s["device"], "batch_size": s["batch_size"], "verify_checksums": s["verify_checksums"]}


def photo_mask_inputs(config: dict, sources: dict, dataset: str) -> dict[str, str | list[str]]:
    """Extra inputs of a mask shard job with saliency.mask_input photo: the store's manifest and the
    raw inputs of the dataset's prepare step (none with mask_input store)."""
    settings = photo_mask_settings(config, sources, dataset)
    if settings is None:
        return {}
    return {"manifest": settings["manifest"], **{f"raw_{k}": v for k, v in settings["inputs"].items()}}


def photo_mask_settings(config: dict, sources: dict, dataset: str) -> dict | None:
    """What a mask shard job needs to re-read the raw photos behind a store (None: mask_input store)."""
    if config["saliency"].get("mask_input", "store") != "photo":
        return None
    if dataset not in sources:
        raise ConfigError(f"saliency.mask_input photo: datasets.{dataset} has no raw inputs to read photos from")
    ds = config["datasets"][dataset]
    # A control set is read like the dataset it varies (fashion_rembg.controls).
    return {"dataset": ds.get("reader", dataset), "inputs": dict(sources[dataset].inputs),
            "manifest": f"results/data/{dataset}/manifest.tsv", "store_size": list(ds["store_size"]),
            "fit": ds.get("fit", "cover")}


def fetch_inputs(config: dict, model: str) -> list[str]:
    """birefnet-general-fp16 is converted from birefnet-general; other models have no input."""
    if model in DERIVED_WEIGHTS:
        return [str(Path(config["saliency"]["model_home"]) / f"{DERIVED_WEIGHTS[model]}.onnx")]
    return []


def quality_inputs(config: dict, dataset: str) -> dict[str, str]:
    """References for mask quality: true masks (demo) and/or class maps (segmentation datasets)."""
    from .config import is_segmentation_dataset

    refs = {}
    if (config["datasets"].get(dataset) or {}).get("truth"):
        refs["truth"] = f"results/data/{dataset}/truth.npy"
    if is_segmentation_dataset(config, dataset):
        refs["classmaps"] = f"results/data/{dataset}/classmaps.npy"
    return refs


def shard_paths(plan_json: str, dataset: str, sod: str, ext: str) -> list[str]:
    """Shard files of a mask set listed by the shard plan (the saliency_plan checkpoint's output)."""
    plan = json.loads(Path(plan_json).read_text())
    return [f"results/saliency/{dataset}/{sod}/shards/{a}-{b}{ext}" for a, b in plan["shards"]]


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


def standin_models(config: dict) -> list[str]:
    """Custom models the pipeline trains itself on the demo's saliency set."""
    names = []
    for name, spec in config["saliency"].get("custom_models", {}).items():
        _check_custom(config["saliency"], name)
        if not spec.get("train_on_demo"):
            continue
        if spec["file"] != f"{name}.onnx":
            raise ConfigError(
                f"saliency.custom_models.{name}.file must be {name}.onnx for a model trained on the demo "
                f"(got {spec['file']!r})"
            )
        if not config["demo"]["enabled"]:
            raise ConfigError(f"saliency.custom_models.{name}.train_on_demo needs demo.enabled: true")
        names.append(name)
    return names


def used_sods(config: dict) -> list[str]:
    """Mask sets the configured experiments consume (plus the default `saliency.model`)."""
    from .config import experiment_table

    sods = {config["saliency"]["model"]}
    sods |= {exp["sod"] for exp in experiment_table(config).values() if exp.get("sod")}
    return sorted(sods - {ORACLE})


def rembg_weight_problems(config: dict, sods: list[str] | None = None) -> list[str]:
    """What is missing from the model home for the mask sets in use, and how to get it."""
    saliency = config["saliency"]
    problems = []
    seen = set()
    for sod in used_sods(config) if sods is None else sods:
        spec = sod_spec(config, sod)
        if spec["kind"] == ORACLE or spec["model"] in seen:
            continue
        seen.add(spec["model"])
        path = Path(weights_path(config, spec))
        if path.is_file():
            continue
        if spec["kind"] == "custom":
            if saliency["custom_models"][spec["model"]].get("train_on_demo"):
                continue
            size = CONTRACTS[spec["session"]].size
            problems.append(
                f"custom saliency model {spec['model']!r} missing: place its ONNX file at {path} "
                f"(contract {spec['contract']}: input [N, 3, {size}, {size}] float32, first output [N, 1, h, w])"
            )
            continue
        model = spec["model"]
        if model in DERIVED_WEIGHTS:
            problems.append(
                f"rembg weights for {model!r} not in the model home yet: rule fetch_rembg_weights will convert "
                f"{DERIVED_WEIGHTS[model]} (needs network for it and `pip install 'rembg[fp16]'`) into {path}"
            )
            continue
        problems.append(
            f"rembg weights for {model!r} not in the model home yet: rule fetch_rembg_weights will download "
            f"{weights_url(model)} ({weights_checksum(model)}) into {path}; without network, place that file "
            f"there yourself"
        )
    return problems


def check_sources(config: dict) -> list[str]:
    """What the user must place where before a real (non-demo) run; empty when all is there."""
    if config["demo"]["enabled"]:
        return rembg_weight_problems(config)
    # Every configured dataset: what is downloaded from where, or what to place where by hand.
    problems = missing_messages(config)
    return problems + rembg_weight_problems(config)
