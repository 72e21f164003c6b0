"""Paths and start-up checks the Snakefile needs, kept out of the rule files."""
from __future__ import annotations

from pathlib import Path

from .errors import ConfigError

REMBG_RELEASES = "https://github.com/danielgatis/rembg/releases/download/v0.0.0"


def sod_model_path(config: dict, name: str) -> str:
    """Where the ONNX weights of saliency model `name` live inside the rembg model home."""
    saliency = config["saliency"]
    custom = saliency.get("custom_models", {})
    home = saliency["model_home"]
    if name in custom:
        return str(Path(home) / custom[name]["file"])
    return str(Path(home) / f"{name}.onnx")


def standin_models(config: dict) -> list[str]:
    """Custom models the pipeline trains itself on the demo's saliency set."""
    names = []
    for name, spec in config["saliency"].get("custom_models", {}).items():
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


def check_sources(config: dict) -> list[str]:
    """What the user must place where before a real (non-demo) run; empty when all is there."""
    if config["demo"]["enabled"]:
        return []
    problems = []
    tasks = [t for t in ("classification", "segmentation") if config.get(t, {}).get("enabled", True)]
    datasets = {config[t]["dataset"] for t in tasks}
    ds = config["datasets"]
    if "fashionstyle14" in datasets:
        root = Path(ds["fashionstyle14"]["root"])
        if not (root / "train.csv").is_file():
            problems.append(
                f"FashionStyle14 missing: place the extracted FashionStyle14_v1/ folder (dataset/<style>/…, "
                f"train.csv, val.csv, test.csv) at {root} — get it from https://esslab.jp/~ess/en/data/fashionstyle14/"
            )
    if "modanet" in datasets:
        ann = Path(ds["modanet"]["annotations"])
        if not ann.is_file():
            problems.append(
                f"ModaNet annotations missing: place modanet2018_instances_train.json at {ann} "
                "(https://github.com/eBay/modanet, fetched with Git LFS; md5 96478657d20e322e9d3282c6d73c0c4c)"
            )
        lmdb_dir = Path(ds["modanet"]["lmdb"])
        if not (lmdb_dir / "data.mdb").is_file():
            problems.append(
                f"PaperDoll images missing: extract photos.lmdb.tar "
                f"(http://vision.is.tohoku.ac.jp/chictopia2/photos.lmdb.tar, md5 a404789687fc3906d7d843942c802f53) "
                f"so that {lmdb_dir}/data.mdb exists"
            )
    model = config["saliency"]["model"]
    if model not in config["saliency"].get("custom_models", {}):
        weights = Path(sod_model_path(config, model))
        if not weights.is_file():
            problems.append(
                f"rembg weights missing: place {weights.name} at {weights} "
                f"(download {REMBG_RELEASES}/{weights.name}; see rembg's model registry for its md5)"
            )
    return problems
