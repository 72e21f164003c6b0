"""Your own data: named `datasets.<name>` entries with a `kind` (imagefolder, coco).

Any number of them sit beside the built-in fashionstyle14/modanet/fashionpedia entries; the name
becomes a folder (results/data/<name>/) and a task's `dataset`. At start-up each entry is checked
and completed with its defaults (`own_datasets`), and its layout is looked at (`plan_own`), so a
wrong path or an empty folder stops a dry run with what was expected, not a traceback later.

This module is imported while Snakemake builds the DAG: no torch.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..choices import check_name
from ..errors import ConfigError

# kind → the task its store serves
KINDS = {"imagefolder": "classification", "coco": "segmentation"}
BUILT_IN = ("fashionstyle14", "modanet", "fashionpedia")
RESERVED_PREFIX = "control-"  # the known-answer control sets (fashion_rembg.controls)
# torchvision's IMG_EXTENSIONS: the files an ImageFolder reads
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
SPLITS = ("train", "val", "test")
DEFAULTS = {"store_size": [224, 224], "fit": "cover", "truth": None,
            "split": {"val_fraction": 0.15, "test_fraction": 0.15, "seed": 0}}
KIND_KEYS = {"imagefolder": ("root", "split_lists"), "coco": ("annotations", "images", "categories")}
IMAGEFOLDER_LAYOUT = (
    "one sub-folder per class holding its images (torchvision ImageFolder layout: <root>/<class>/<image>.jpg)"
)


def own_names(config: dict) -> list[str]:
    """Names of the configured own datasets (entries with a `kind`), in config order."""
    return [name for name, entry in (config.get("datasets") or {}).items()
            if isinstance(entry, dict) and "kind" in entry and name not in BUILT_IN]


def kind_of(config: dict, name: str) -> str | None:
    entry = (config.get("datasets") or {}).get(name)
    return entry.get("kind") if isinstance(entry, dict) and name not in BUILT_IN else None


def task_names(config: dict, task: str) -> list[str]:
    """Own datasets usable by `task` (imagefolder: classification, coco: segmentation and instance)."""
    kind_task = "segmentation" if task == "instance" else task  # a COCO store serves both
    return [name for name in own_names(config) if KINDS.get(kind_of(config, name)) == kind_task]


def _fraction(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ConfigError(f"{where}: expected a fraction in [0, 1), got {value!r}")
    return float(value)


def own_entry(name: str, entry: dict) -> dict:
    """One entry checked and completed with its defaults (ConfigError naming the key)."""
    where = f"datasets.{name}"
    check_name(name, where)
    if name.startswith(RESERVED_PREFIX):
        raise ConfigError(f"{where}: names starting with {RESERVED_PREFIX!r} are the known-answer controls'; rename it")
    kind = entry.get("kind")
    if kind not in KINDS:
        raise ConfigError(f"{where}.kind: {kind!r} is not one of {', '.join(KINDS)}")
    required = ("root",) if kind == "imagefolder" else ("annotations", "images")
    for key in required:
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            example = "root: /path/to/photos" if key == "root" else f"{key}: /path/to/{key}"
            raise ConfigError(f"{where}.{key}: required for kind {kind} (e.g. `{example}`)")
    allowed = {"kind", "store_size", "fit", "truth", "split", "reader", *KIND_KEYS[kind]}  # reader: set below
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown} for kind {kind}; allowed: {', '.join(sorted(allowed))}")
    out = {**DEFAULTS, **entry, "split": {**DEFAULTS["split"], **(entry.get("split") or {})}}
    split = out["split"]
    for key in ("val_fraction", "test_fraction"):
        split[key] = _fraction(split[key], f"{where}.split.{key}")
    if split["val_fraction"] + split["test_fraction"] >= 1:
        raise ConfigError(f"{where}.split: val_fraction + test_fraction must leave images for training")
    if kind == "imagefolder":
        lists = out.get("split_lists") or {}
        if lists and (not {"train", "test"} <= set(lists) or not set(lists) <= set(SPLITS)):
            raise ConfigError(f"{where}.split_lists: give train and test, optionally val (else carved out of "
                              f"train with split.val_fraction), got {sorted(lists)}")
        out["split_lists"] = dict(lists) or None  # relative to root (resolved where read: idempotent)
    else:
        cats = out.get("categories")
        if cats is not None and (not isinstance(cats, list) or not cats or not all(
                isinstance(c, (str, int)) and not isinstance(c, bool) for c in cats)):
            raise ConfigError(f"{where}.categories: expected a non-empty list of category names or ids, got {cats!r}")
        out["categories"] = cats
    out["reader"] = kind  # the raw-photo reader of saliency.mask_input photo (datasets/photos.py)
    return out


def own_datasets(config: dict) -> dict[str, dict]:
    """`{name: completed entry}` of every own dataset (for `config["datasets"].update`)."""
    return {name: own_entry(name, config["datasets"][name]) for name in own_names(config)}


# ----------------------------------------------------------------------------------------------
# Start-up look at the raw layout
# ----------------------------------------------------------------------------------------------
def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def class_folders(root: Path) -> list[str]:
    """Class names of an ImageFolder root: its visible sub-folders, sorted (torchvision's order)."""
    return sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))


def _has_image(folder: Path) -> bool:
    for _, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        if any(is_image_name(f) for f in filenames):
            return True
    return False


def imagefolder_problem(name: str, root: Path) -> str | None:
    """What is wrong with an ImageFolder root, said as what was expected there (None: looks right)."""
    where = f"datasets.{name}.root"
    if not root.exists():
        return f"{where}: {root} does not exist; expected a folder with {IMAGEFOLDER_LAYOUT}"
    if not root.is_dir():
        return f"{where}: {root} is a file, not a folder; expected a folder with {IMAGEFOLDER_LAYOUT}"
    classes = class_folders(root)
    if len(classes) < 2:
        found = f"only the sub-folder {classes[0]!r}" if classes else "no sub-folder"
        return f"{where}: {root} holds {found}; expected at least two classes, {IMAGEFOLDER_LAYOUT}"
    empty = [c for c in classes if not _has_image(root / c)]
    if empty:
        return (f"{where}: class folder(s) {', '.join(repr(c) for c in empty)} under {root} hold no image "
                f"({', '.join(IMAGE_EXTENSIONS)}); add images or remove the folder(s)")
    return None


def coco_problem(name: str, entry: dict) -> str | None:
    where = f"datasets.{name}"
    annotations, images = Path(entry["annotations"]), Path(entry["images"])
    if not annotations.is_file():
        return (f"{where}.annotations: {annotations} not found; expected a COCO instances JSON "
                "(images, annotations, categories)")
    if not images.exists():
        return (f"{where}.images: {images} not found; expected the folder (or .zip) holding the images named by "
                f"the file_name fields of {annotations.name}")
    return None


def list_paths(root: str, split_lists: dict | None) -> dict[str, str]:
    """Split-list files by split, resolved against the ImageFolder root (absolute paths stay)."""
    return {split: str(Path(root) / path) for split, path in (split_lists or {}).items()}


def plan_own(config: dict, name: str, plan, used: set[str]):
    """Fill `plan` (a sources.DatasetPlan, passed in so this module need not import sources, which
    imports it) with the prepare inputs of an own dataset; a layout problem raises when the dataset
    is in `used`, else it is listed."""
    entry = config["datasets"][name]
    if entry["kind"] == "imagefolder":
        problem = imagefolder_problem(name, Path(entry["root"]))
        plan.inputs["root"] = entry["root"]
        lists = list_paths(entry["root"], entry.get("split_lists"))
        plan.inputs.update({f"list_{k}": v for k, v in lists.items()})
        for split, path in lists.items():
            if problem is None and not Path(path).is_file():
                problem = f"datasets.{name}.split_lists.{split}: {path} not found (paths are relative to the root)"
    else:
        problem = coco_problem(name, entry)
        plan.inputs.update(annotations=entry["annotations"], images=entry["images"])
    if problem:
        if name in used:
            raise ConfigError(problem)
        plan.missing.append(problem)
    return plan


__all__ = ["KINDS", "IMAGE_EXTENSIONS", "own_names", "own_datasets", "own_entry", "task_names", "plan_own",
           "class_folders", "is_image_name"]
