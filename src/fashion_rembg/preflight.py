"""Start-up checks: what must be placed where before jobs run, and custom models that cannot work.

Called by `common.smk` while the DAG is built (no torch, no onnxruntime). Problems that a rule
will still fix (a download) are returned as lines to print; a file that is there but cannot work
(a custom ONNX model whose input shape contradicts its contract) raises a ConfigError.
Import order: errors → choices/registries → config → paths → preflight.
"""
from __future__ import annotations

from pathlib import Path

from .config import experiment_table
from .datasets.sources import missing_messages
from .errors import ConfigError
from .paths import pretrained_file, sod_spec, weights_path
from .saliency.registry import (
    CONTRACTS,
    CUSTOM_SESSIONS,
    DERIVED_WEIGHTS,
    ORACLE,
    check_custom_model,
    weights_checksum,
    weights_url,
)


def standin_models(config: dict) -> list[str]:
    """Custom models the pipeline trains itself on the demo's saliency set."""
    names = []
    for name, spec in config["saliency"].get("custom_models", {}).items():
        check_custom_model(config["saliency"], name)
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
    sods = {config["saliency"]["model"]}
    sods |= {exp["sod"] for exp in experiment_table(config).values() if exp.get("sod")}
    return sorted(sods - {ORACLE})


def onnx_input_size(path: str | Path) -> tuple[int | None, int | None]:
    """(height, width) of an ONNX model's first graph input, read without running it (None: dynamic)."""
    import onnx  # only when a custom model file is there

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # a broken file: onnx raises DecodeError and friends
        raise ConfigError(f"{path}: not a readable ONNX model ({type(err).__name__}: {err})") from None
    initializers = {init.name for init in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if not inputs:
        raise ConfigError(f"{path}: the ONNX graph has no input")
    dims = inputs[0].type.tensor_type.shape.dim
    if len(dims) != 4:
        raise ConfigError(f"{path}: input {inputs[0].name!r} has {len(dims)} axes; rembg feeds [N, 3, H, W]")
    sides = [d.dim_value if d.HasField("dim_value") else None for d in dims[2:]]
    return sides[0], sides[1]


def custom_contract_problem(name: str, path: str | Path, contract: str) -> str | None:
    """Why custom model `name` at `path` cannot run under `contract` (None: its input shape fits)."""
    height, width = onnx_input_size(path)
    size = CONTRACTS[CUSTOM_SESSIONS[contract]].size
    if (height is None or height == size) and (width is None or width == size):
        return None
    fits = [c for c, session in CUSTOM_SESSIONS.items() if CONTRACTS[session].size in (height, width)]
    hint = (
        f"set saliency.custom_models.{name}.contract: {' or '.join(fits)}"
        if fits
        else f"no rembg contract feeds {height}x{width} (u2net: 320x320; dis, ben: 1024x1024); re-export the model"
    )
    return (
        f"saliency.custom_models.{name}: {path} takes [N, 3, {height}, {width}] input, but contract {contract!r} "
        f"feeds {size}x{size} images; {hint}"
    )


def check_custom_contracts(config: dict, sods: list[str] | None = None) -> None:
    """Raise a ConfigError for a custom model in use whose ONNX input shape contradicts its contract."""
    for sod in used_sods(config) if sods is None else sods:
        spec = sod_spec(config, sod)
        if spec["kind"] != "custom":
            continue
        path = Path(weights_path(config, spec))
        if path.is_file():
            problem = custom_contract_problem(spec["model"], path, spec["contract"])
            if problem:
                raise ConfigError(problem)


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


def missing_pretrained(config: dict) -> list[str]:
    """What to place where for ImageNet- (or COCO-) initialised experiments whose weights are absent."""
    from .models.weights import TORCHVISION_BASE_URL, torchvision_arch
    from .models.weights import weights_url as torchvision_url

    if (config.get("compute") or {}).get("pretrained_standin"):
        return []
    problems = {}
    for exp in experiment_table(config).values():
        path = pretrained_file(config, exp)
        if path and not Path(path).is_file():
            if exp.get("init") == "coco":  # the file name says which: torchvision's COCO Mask R-CNN weights
                problems[path] = (
                    f"COCO Mask R-CNN weights for {exp['arch']} not in compute.torch_home yet: rule "
                    f"fetch_torchvision_weights will download {TORCHVISION_BASE_URL}{Path(path).name} into {path}; "
                    f"without network, place {Path(path).name} at {path} yourself"
                )
                continue
            arch = torchvision_arch(exp)
            problems[path] = (
                f"ImageNet weights for {arch} not in compute.torch_home yet: rule fetch_torchvision_weights will "
                f"download {torchvision_url(arch)} into {path}; without network, place that file there yourself"
            )
    return list(problems.values())


def standin_weights(config: dict) -> dict[str, str]:
    """``{weights file: torchvision arch}`` the demo writes as stand-ins (compute.pretrained_standin)."""
    from .models.weights import torchvision_arch

    if not (config.get("compute") or {}).get("pretrained_standin"):
        return {}
    if not (config.get("demo") or {}).get("enabled"):
        raise ConfigError(
            "compute.pretrained_standin writes fake ImageNet weights and is for the demo only (demo.enabled: true); "
            "set it to false and place the real files under compute.torch_home"
        )
    out = {}
    for exp in experiment_table(config).values():
        path = pretrained_file(config, exp)
        if path:
            out[path] = exp["arch"] if exp.get("init") == "coco" else torchvision_arch(exp)
    return out
