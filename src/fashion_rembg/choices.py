"""Every list of allowed values the config may name, defined once.

Imported by the config checks, the models, the paths and `common.smk`; torch-free because the
Snakefile imports it while it builds the DAG. tests/test_choices.py checks the JSON schema's enums
against these lists, and the torch-side registries (augmentations, fills, architectures) against
them, so they cannot drift apart unnoticed.
"""
from __future__ import annotations

import re

from .errors import ConfigError
from .models.names import CLASSIFIER_ARCHS, INSTANCE_BACKBONES, SEGMENTATION_ENCODERS

__all__ = [
    "AUGMENTATIONS", "BN_TOGGLE_ARCHS", "BUILTIN_DATASETS", "CLASSIFIER_ARCHS", "FILLS", "INITS", "INSTANCE_ARCHS",
    "INSTANCE_INITS", "ORACLE_SOD", "OPTIMIZERS", "SAFE_NAME", "SCHEDULES", "SEGMENTATION_ENCODERS", "SEGMENTERS",
    "TASKS", "TASK_DATASETS",
    "VARIANTS", "augment_settings", "canonical_augment", "check_name",
]  # fmt: skip

# segmentation = semantic (smp, class maps); instance = Mask R-CNN on the instance store.
TASKS = ("classification", "segmentation", "instance")
# Built-in datasets per task; own datasets (datasets.<name>.kind) are added per config.
TASK_DATASETS = {"classification": ("fashionstyle14",), "segmentation": ("modanet", "fashionpedia"),
                 "instance": ("modanet", "fashionpedia")}  # fmt: skip
BUILTIN_DATASETS = tuple(dict.fromkeys(name for names in TASK_DATASETS.values() for name in names))
VARIANTS = ("original", "rembg", "oracle")
INITS = ("scratch", "imagenet")
# Mask R-CNN archs (models/detectors.py builds them); coco = torchvision's COCO Mask R-CNN weights,
# heads re-initialised.
INSTANCE_ARCHS = tuple(INSTANCE_BACKBONES)
INSTANCE_INITS = ("scratch", "imagenet", "coco")
# The names of fashion_rembg.training.augment.AUGMENTATIONS, which needs torch: the config is checked
# at DAG time without it (tests/test_augment.py keeps both equal).
AUGMENTATIONS = ("none", "flip", "crop_flip", "color_jitter", "randaugment")
# RandAugment's strength: `randaugment-n<ops>-m<magnitude>` (either part may be left out; like timm's
# "rand-n2-m9" strings, but in this one order); plain `randaugment` is torchvision's default, 2 ops at magnitude 9.
RANDAUGMENT_DEFAULTS = {"num_ops": 2, "magnitude": 9}
RANDAUGMENT_LIMITS = {"num_ops": (1, 14), "magnitude": (0, 30)}  # v2.RandAugment: 14 ops, 31 magnitude bins
_RANDAUGMENT = re.compile(r"randaugment(?:-n(?P<num_ops>\d+))?(?:-m(?P<magnitude>\d+))?")


def augment_settings(name: str) -> tuple[str, dict[str, int]]:
    """``(registry name, its keyword settings)`` of an augment value, e.g. ``randaugment-n1-m9`` →
    ``("randaugment", {"num_ops": 1, "magnitude": 9})``; raises ``ConfigError`` for unknown values."""
    if name in AUGMENTATIONS and name != "randaugment":
        return name, {}
    match = _RANDAUGMENT.fullmatch(name) if isinstance(name, str) else None
    if match is None:
        raise ConfigError(f"{name!r} is not one of {', '.join(AUGMENTATIONS)} "
                          "(RandAugment's strength: randaugment-n<ops>-m<magnitude>, e.g. randaugment-n1-m9)")
    settings = {}
    for key, default in RANDAUGMENT_DEFAULTS.items():
        value = int(match[key]) if match[key] is not None else default
        low, high = RANDAUGMENT_LIMITS[key]
        if not low <= value <= high:
            raise ConfigError(f"{name!r}: RandAugment {key} must be {low}..{high}, got {value}")
        settings[key] = value
    return "randaugment", settings


def canonical_augment(name: str) -> str:
    """One spelling per augmentation (ids and hashes depend on it): torchvision's default
    RandAugment is ``randaugment``, any other strength ``randaugment-n<ops>-m<magnitude>``."""
    base, settings = augment_settings(name)
    if not settings or settings == RANDAUGMENT_DEFAULTS:
        return base
    return f"{base}-n{settings['num_ops']}-m{settings['magnitude']}"


OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "step", "constant")
# Config name of a segmentation architecture (segmentation_models_pytorch class: models/segmenters.py).
SEGMENTERS = ("unet", "fpn", "deeplabv3plus")
# Architectures whose batch norm can be switched on/off (VGG: torchvision's *_bn twin).
BN_TOGGLE_ARCHS = ("shallow_cnn", "vgg11", "vgg13", "vgg16", "vgg19")
# Backgrounds of a composite (fashion_rembg.saliency.composite builds each; a test keeps them equal).
FILLS = ("black", "white", "gray", "mean", "blur", "noise")
ORACLE_SOD = "oracle"  # results/saliency/<dataset>/oracle/masks.npy = the true masks

# A config name that becomes a path component (mask set, custom model, fill, ...): one component,
# never '.', '..', hidden, empty or with a separator.
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}")


def check_name(value, where: str) -> str:
    """`value` if it is a safe single path component, else a ConfigError naming the key."""
    if not isinstance(value, str) or not SAFE_NAME.fullmatch(value):
        raise ConfigError(
            f"{where}: {value!r} is not a usable name: it becomes a folder name, so it must start with a letter "
            "or digit and hold only letters, digits, _ . - (at most 100 characters; no '/', '..' or leading dot)"
        )
    return value
