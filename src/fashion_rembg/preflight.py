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


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(buf: memoryview) -> list[tuple[int, int | memoryview]]:
    """(field number, value) of one protobuf message: varints as ints, length-delimited fields as views."""
    fields, pos = [], 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + size], pos + size
        elif wire in (1, 5):  # fixed 64 / 32 bits
            value, pos = buf[pos : pos + (8 if wire == 1 else 4)], pos + (8 if wire == 1 else 4)
        else:
            raise ValueError(f"wire type {wire} at byte {pos}")
        if number == 0 or pos > len(buf):
            raise ValueError("truncated or not a protobuf message")
        fields.append((number, value))
    return fields


def _sub(fields: list, number: int) -> list:
    """Fields of the embedded message `number` (absent: empty; repeated: merged, as protobuf does)."""
    return [field for n, value in fields if n == number for field in _fields(value)]


def _last(fields: list, number: int, default=None):
    values = [value for n, value in fields if n == number]
    return values[-1] if values else default


def onnx_input_size(path: str | Path) -> tuple[int | None, int | None]:
    """(height, width) of an ONNX model's first graph input, read without running it (None: dynamic).

    Read straight from the protobuf wire format (ModelProto.graph → GraphProto.input, minus its
    initializers → TypeProto.tensor_type.shape.dim): `import onnx` alone costs ~1.5 CPU-s, and this
    runs at every Snakemake start (each SLURM job's too) once a custom model file is there.
    """
    try:
        model = _fields(memoryview(Path(path).read_bytes()))
        if not any(n == 7 for n, _ in model):
            raise ValueError("no graph")
        graph = _sub(model, 7)  # ModelProto.graph
        initializers = {bytes(_last(_fields(t), 8, b"")).decode() for n, t in graph if n == 5}  # TensorProto.name
        inputs = [info for info in (_fields(v) for n, v in graph if n == 11)  # ValueInfoProto: name 1, type 2
                  if bytes(_last(info, 1, b"")).decode() not in initializers]  # fmt: skip
        if inputs:  # TypeProto.tensor_type (1) → Tensor.shape (2) → TensorShapeProto.dim (1)
            dims = [_fields(d) for n, d in _sub(_sub(_sub(inputs[0], 2), 1), 2) if n == 1]
    except (ValueError, IndexError, TypeError, UnicodeDecodeError) as err:  # not protobuf, or not an ONNX model
        raise ConfigError(f"{path}: not a readable ONNX model ({type(err).__name__}: {err})") from None
    if not inputs:
        raise ConfigError(f"{path}: the ONNX graph has no input")
    name = bytes(_last(inputs[0], 1, b"")).decode()
    if len(dims) != 4:
        raise ConfigError(f"{path}: input {name!r} has {len(dims)} axes; rembg feeds [N, 3, H, W]")
    sides = [_last(d, 1) for d in dims[2:]]  # Dimension.dim_value (int64); dim_param instead: dynamic
    return tuple(None if v is None else v - 2**64 if v >= 2**63 else v for v in sides)


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
