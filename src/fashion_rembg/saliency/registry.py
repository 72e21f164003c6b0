"""rembg models, their tensor contracts and the named *mask sets* of the config.

Pure Python (no rembg / onnxruntime import): the Snakefile calls it at start-up.

A mask set is what the ``{sod}`` wildcard names (``results/saliency/<dataset>/<sod>/``):
a model (rembg registry name or a key of ``saliency.custom_models``) plus mask
options (soft/threshold, ``post_process_mask``, alpha matting). A plain model name
is a mask set with default options. ``oracle`` is reserved for the true masks.

Facts are pinned to rembg 2.0.86 (``pyproject.toml``); ``tests/test_saliency_registry.py``
checks the weights table against rembg's own session classes and the contracts
against ``rembg.remove`` output.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass

from ..choices import ORACLE_SOD, check_name
from ..errors import ConfigError

REMBG_VERSION = "2.0.86"
RELEASES = "https://github.com/danielgatis/rembg/releases/download/v0.0.0"
ORACLE = ORACLE_SOD

# name -> (release file, "algo:hexdigest") as in each session's download_models().
REMBG_WEIGHTS: dict[str, tuple[str, str]] = {
    "u2net": ("u2net.onnx", "md5:60024c5c889badc19c04ad937298a77b"),
    "u2netp": ("u2netp.onnx", "md5:8e83ca70e441ab06c318d82300c84806"),
    "u2net_human_seg": ("u2net_human_seg.onnx", "md5:c09ddc2e0104f800e3e1bb4652583d1f"),
    "u2net_cloth_seg": ("u2net_cloth_seg.onnx", "md5:2434d1f3cb744e0e49386c906e5a08bb"),
    "silueta": ("silueta.onnx", "md5:55e59e0d8062d2f5d013f4725ee84782"),
    "isnet-general-use": ("isnet-general-use.onnx", "md5:fc16ebd8b0c10d971d3513d564d01e29"),
    "isnet-anime": ("isnet-anime.onnx", "md5:6f184e756bb3bd901c8849220a83e38e"),
    "birefnet-general": ("BiRefNet-general-epoch_244.onnx", "md5:7a35a0141cbbc80de11d9c9a28f52697"),
    "birefnet-general-lite": (
        "BiRefNet-general-bb_swin_v1_tiny-epoch_232.onnx",
        "md5:4fab47adc4ff364be1713e97b7e66334",
    ),
    "birefnet-portrait": ("BiRefNet-portrait-epoch_150.onnx", "md5:c3a64a6abf20250d090cd055f12a3b67"),
    "birefnet-dis": ("BiRefNet-DIS-epoch_590.onnx", "md5:2d4d44102b446f33a4ebb2e56c051f2b"),
    "birefnet-hrsod": ("BiRefNet-HRSOD_DHU-epoch_115.onnx", "md5:c017ade5de8a50ff0fd74d790d268dda"),
    "birefnet-cod": ("BiRefNet-COD-epoch_125.onnx", "md5:f6d0d21ca89d287f17e7afe9f5fd3b45"),
    "birefnet-massive": (
        "BiRefNet-massive-TR_DIS5K_TR_TEs-epoch_420.onnx",
        "md5:33e726a2136a3d59eb0fdf613e31e3e9",
    ),
    "bria-rmbg": (
        "bria-rmbg-2.0.onnx",
        "sha256:5b486f08200f513f460da46dd701db5fbb47d79b4be4b708a19444bcd4e79958",
    ),
}
# rembg converts this one locally from birefnet-general (needs rembg[fp16]); no checksum.
DERIVED_WEIGHTS = {"birefnet-general-fp16": "birefnet-general"}

# Custom-model contract (config) -> rembg session name.
CUSTOM_SESSIONS = {"u2net": "u2net_custom", "dis": "dis_custom", "ben": "ben_custom"}

UNSUPPORTED = {
    "sam": "needs encoder+decoder files and point/box prompts, not one saliency mask per image",
    "withoutbg": "a cloud API: images would leave the machine",
    "atlascloud": "a cloud API: images would leave the machine",
}
CLOTH_CATEGORIES = ("upper", "lower", "full", "attire")

_IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
_DIS = ((0.5, 0.5, 0.5), (1.0, 1.0, 1.0))


@dataclass(frozen=True)
class Contract:
    """How a rembg session turns an image into a mask (its ``normalize`` + ``predict``).

    ``batched``: the stage reimplements it vectorised; otherwise rembg's own
    per-image ``predict`` runs (u2net_cloth_seg's argmax + palettes).
    """

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    sigmoid: bool = False  # BiRefNet: sigmoid on the raw output before min-max
    clip: bool = False  # u2net: clip(0, 1) after min-max
    batched: bool = True


_BIREFNET = Contract(1024, *_IMAGENET, sigmoid=True)
CONTRACTS: dict[str, Contract] = {
    "u2net": Contract(320, *_IMAGENET, clip=True),
    "u2netp": Contract(320, *_IMAGENET),
    "u2net_human_seg": Contract(320, *_IMAGENET),
    "silueta": Contract(320, *_IMAGENET),
    "u2net_custom": Contract(320, *_IMAGENET),
    "u2net_cloth_seg": Contract(768, *_IMAGENET, batched=False),
    "isnet-general-use": Contract(1024, *_DIS),
    "isnet-anime": Contract(1024, (0.485, 0.456, 0.406), (1.0, 1.0, 1.0)),
    "dis_custom": Contract(1024, *_DIS),
    "ben_custom": Contract(1024, *_DIS),
    "bria-rmbg": Contract(1024, *_IMAGENET),
    **{
        name: _BIREFNET
        for name in (
            "birefnet-general",
            "birefnet-general-lite",
            "birefnet-general-fp16",
            "birefnet-portrait",
            "birefnet-dis",
            "birefnet-hrsod",
            "birefnet-cod",
            "birefnet-massive",
        )
    },
}

MASK_OPTIONS = {
    "threshold": None,
    "post_process": False,
    "alpha_matting": False,
    "alpha_matting_foreground_threshold": 240,
    "alpha_matting_background_threshold": 10,
    "alpha_matting_erode_size": 10,
    "cloth_category": None,
}


def registry_models() -> list[str]:
    """rembg model names usable directly as a model (local, single ONNX file)."""
    return sorted([*REMBG_WEIGHTS, *DERIVED_WEIGHTS])


def weights_url(name: str) -> str | None:
    entry = REMBG_WEIGHTS.get(name)
    return f"{RELEASES}/{entry[0]}" if entry else None


def weights_checksum(name: str) -> str | None:
    entry = REMBG_WEIGHTS.get(name)
    return entry[1] if entry else None


def _models_hint(saliency: dict) -> str:
    custom = sorted(saliency.get("custom_models") or {})
    return (
        f"rembg models: {', '.join(registry_models())}"
        + (f"; custom models: {', '.join(custom)}" if custom else "")
    )


def check_custom_model(saliency: dict, key: str) -> dict:
    spec = (saliency.get("custom_models") or {})[key]
    where = f"saliency.custom_models.{key}"
    if key == ORACLE:
        raise ConfigError(f"{where}: the name '{ORACLE}' is reserved for the true foreground masks; rename it")
    if key in CONTRACTS or key in UNSUPPORTED:
        raise ConfigError(f"{where}: '{key}' is a rembg model name; give the custom model another name")
    contract = spec.get("contract", "u2net")
    if contract not in CUSTOM_SESSIONS:
        raise ConfigError(f"{where}.contract: {contract!r} is not one of {', '.join(CUSTOM_SESSIONS)}")
    file = str(spec.get("file", ""))
    norm = posixpath.normpath(file.replace(os.sep, "/"))
    if not file or os.path.isabs(file) or norm == ".." or norm.startswith("../") or norm == ".":
        home = saliency.get("model_home", "resources/rembg_models")
        raise ConfigError(
            f"{where}.file: {file!r} is outside the model home {home}: rembg (>= 2.0.75) only loads "
            f"custom models inside U2NET_HOME; copy or symlink it to {home}/{os.path.basename(file) or key + '.onnx'} "
            f"and set file: {os.path.basename(file) or key + '.onnx'}"
        )
    taken = {f"{m}.onnx": m for m in (*REMBG_WEIGHTS, *DERIVED_WEIGHTS)}
    if norm in taken:
        raise ConfigError(
            f"{where}.file: {file!r} is the file name of rembg's {taken[norm]} weights in the model home "
            f"(rule fetch_rembg_weights writes it); rename the custom model's file"
        )
    entry = {"file": norm, "contract": contract, "session": CUSTOM_SESSIONS[contract]}
    if spec.get("sha256"):  # only when set: a spec without it stays as it was (same rule params)
        entry["checksum"] = f"sha256:{spec['sha256']}"
    return entry


def _model_entry(saliency: dict, model: str, where: str) -> dict:
    custom = saliency.get("custom_models") or {}
    if model in custom:
        c = check_custom_model(saliency, model)
        entry = {"kind": "custom", "model": model, "session": c["session"], "file": c["file"]}
        return entry | {"contract": c["contract"]} | ({"checksum": c["checksum"]} if "checksum" in c else {})
    if model in UNSUPPORTED:
        raise ConfigError(f"{where}: rembg model {model!r} cannot be used here: {UNSUPPORTED[model]}")
    if model in CUSTOM_SESSIONS.values():
        raise ConfigError(
            f"{where}: {model!r} is rembg's generic custom session; declare the ONNX file under "
            f"saliency.custom_models (file, contract) and use that name"
        )
    if model not in REMBG_WEIGHTS and model not in DERIVED_WEIGHTS:
        raise ConfigError(f"{where}: unknown model {model!r}; {_models_hint(saliency)}")
    return {"kind": "registry", "model": model, "session": model, "file": f"{model}.onnx", "contract": None}


def _options(raw: dict, where: str, model_session: str) -> dict:
    opts = dict(MASK_OPTIONS)
    unknown = sorted(set(raw) - set(MASK_OPTIONS) - {"model"})
    if unknown:
        raise ConfigError(f"{where}: unknown mask option(s) {unknown}; valid: model, {', '.join(MASK_OPTIONS)}")
    opts.update({k: v for k, v in raw.items() if k in MASK_OPTIONS})
    t = opts["threshold"]
    if t is not None and (isinstance(t, bool) or not isinstance(t, int) or not 1 <= t <= 255):
        raise ConfigError(f"{where}.threshold: {t!r} must be an integer 1..255 (or null for soft masks)")
    for key in ("alpha_matting_foreground_threshold", "alpha_matting_background_threshold"):
        v = opts[key]
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 255:
            raise ConfigError(f"{where}.{key}: {v!r} must be an integer 0..255")
    v = opts["alpha_matting_erode_size"]
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ConfigError(f"{where}.alpha_matting_erode_size: {v!r} must be an integer >= 0")
    for key in ("post_process", "alpha_matting"):
        if not isinstance(opts[key], bool):
            raise ConfigError(f"{where}.{key}: {opts[key]!r} must be true or false")
    cc = opts["cloth_category"]
    if model_session == "u2net_cloth_seg":
        if cc not in CLOTH_CATEGORIES:
            raise ConfigError(
                f"{where}: u2net_cloth_seg returns one mask per clothing category; set cloth_category "
                f"to one of {', '.join(CLOTH_CATEGORIES)} in a saliency.mask_sets entry"
            )
    elif cc is not None:
        raise ConfigError(f"{where}.cloth_category: only meaningful for u2net_cloth_seg (model is {model_session})")
    return opts


def mask_set_spec(config: dict, name: str) -> dict:
    """Validate the mask-set name ``name`` (a ``{sod}`` value) and return its full spec.

    The spec is a plain JSON-able dict (used as rule ``params``, so any change to a
    mask set reruns exactly that mask set): ``name``, ``kind`` (registry, custom or
    oracle), ``model``, ``session`` (rembg session name), ``file`` (weights, relative to
    ``model_home``), ``contract`` (custom models), ``options`` (see ``MASK_OPTIONS``).
    """
    saliency = config["saliency"] if "saliency" in config else config
    if name == ORACLE:
        return {"name": ORACLE, "kind": "oracle"}
    check_name(name, "mask set name")
    mask_sets = saliency.get("mask_sets") or {}
    custom = saliency.get("custom_models") or {}
    if name in mask_sets:
        where = f"saliency.mask_sets.{name}"
        raw = mask_sets[name] or {}
        if not isinstance(raw, dict) or "model" not in raw:
            raise ConfigError(f"{where}: needs at least `model: <rembg model or custom model name>`")
        entry = _model_entry(saliency, str(raw["model"]), f"{where}.model")
        if name != entry["model"] and (name in custom or name in CONTRACTS or name in UNSUPPORTED):
            raise ConfigError(
                f"{where}: a mask set named like the model {name!r} must use that model "
                f"(got model: {entry['model']!r}); rename the mask set"
            )
        options = _options(raw, where, entry["session"])
    elif name in custom or name in CONTRACTS or name in UNSUPPORTED or name in CUSTOM_SESSIONS.values():
        where = f"saliency mask set {name!r}"
        entry = _model_entry(saliency, name, where)
        options = _options({"post_process": bool(saliency.get("post_process", False))}, where, entry["session"])
    else:
        raise ConfigError(
            f"unknown mask set {name!r} (the <sod> of results/saliency/<dataset>/<sod>/): use a key of "
            f"saliency.mask_sets ({', '.join(sorted(mask_sets)) or 'none defined'}), a custom model or a rembg "
            f"model ({_models_hint(saliency)}), or '{ORACLE}' for the true masks"
        )
    return {"name": name, **entry, "options": options}


def mask_set_names(config: dict) -> list[str]:
    """Every mask set the config defines explicitly (mask_sets and custom models)."""
    saliency = config["saliency"] if "saliency" in config else config
    return sorted({*(saliency.get("mask_sets") or {}), *(saliency.get("custom_models") or {})})


def validate_saliency(config: dict) -> dict[str, dict]:
    """Check every named mask set, custom model and the default ``saliency.model``; return their specs."""
    saliency = config["saliency"]
    for section in ("mask_sets", "custom_models"):
        for name in saliency.get(section) or {}:
            check_name(name, f"saliency.{section} key")  # becomes results/saliency/<dataset>/<name>/
    for name in saliency.get("mask_sets") or {}:
        if name == ORACLE:
            raise ConfigError(
                f"saliency.mask_sets.{ORACLE}: the name '{ORACLE}' is reserved for the true foreground "
                "masks (results/saliency/<dataset>/oracle/); rename the mask set"
            )
    for name in saliency.get("custom_models") or {}:
        check_custom_model(saliency, name)
    specs = {name: mask_set_spec(config, name) for name in mask_set_names(config)}
    default = saliency.get("model", "u2net")
    if default == ORACLE:
        raise ConfigError("saliency.model: 'oracle' (true masks) cannot be the default rembg mask set")
    try:
        specs[default] = mask_set_spec(config, default)
    except ConfigError as err:
        raise ConfigError(f"saliency.model: {err}") from None
    return specs
