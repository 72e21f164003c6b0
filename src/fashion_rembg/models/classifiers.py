"""Image classifiers: the paper's shallow CNN plus any torchvision classification model.

All models take normalised float images ``(B, 3, H, W)`` and return logits ``(B, num_classes)``.
``init="imagenet"`` loads torchvision's ImageNet weights from a local TORCH_HOME (see
:mod:`fashion_rembg.models.weights`) into every layer but the class head.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from torch import nn

from fashion_rembg.choices import BN_TOGGLE_ARCHS, CLASSIFIER_ARCHS, INITS
from fashion_rembg.errors import ConfigError, PipelineError
from fashion_rembg.models.weights import load_imagenet_state_dict

__all__ = [
    "BN_TOGGLE_ARCHS",
    "CLASSIFIERS",
    "ShallowCNN",
    "available_classifiers",
    "build_classifier",
    "load_pretrained",
    "register_classifier",
]

# name → builder(name, num_classes, *, width, blocks, batch_norm, dropout, image_size, init, torch_home),
# filled by @register_classifier below (timm's registry pattern); build_classifier looks names up here.
CLASSIFIERS: dict[str, Callable[..., nn.Module]] = {}


def register_classifier(*names: str):
    """Decorator: register a builder under each of ``names`` (a name may be registered once)."""

    def register(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        for name in names:
            if name in CLASSIFIERS:
                raise ValueError(f"classifier {name!r} is registered twice")
            CLASSIFIERS[name] = builder
        return builder

    return register


class ShallowCNN(nn.Module):
    """The paper's "simple, shallow network": ``blocks`` conv blocks then GAP → dropout → linear.

    Block ``i`` is conv3×3 (``width·2^i`` channels) → [BatchNorm] → ReLU → maxpool 2×2.
    Global average pooling makes the head independent of the input resolution.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        width: int = 32,
        blocks: int = 3,
        batch_norm: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if not 2 <= blocks <= 4:
            raise ValueError(f"shallow_cnn: blocks must be 2..4, got {blocks}")
        if width < 1:
            raise ValueError(f"shallow_cnn: width must be >= 1, got {width}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"shallow_cnn: dropout must be in [0, 1), got {dropout}")
        layers: list[nn.Module] = []
        in_ch = 3
        for i in range(blocks):
            out_ch = width * 2**i
            # The conv bias is redundant when BatchNorm follows (BN has its own shift).
            layers.append(nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_ch))
            layers += [nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            in_ch = out_ch
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(in_ch, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x)).flatten(1)
        return self.classifier(self.dropout(x))


def _torchvision():
    # Imported on first use: jobs that train the shallow CNN skip torchvision's ~1.5 s import.
    import torchvision

    return torchvision


def _torchvision_names() -> list[str]:
    # Only classification models live directly in torchvision.models (not .segmentation etc.).
    tv = _torchvision()
    return sorted(tv.models.list_models(module=tv.models))


def _head(model: nn.Module, num_classes: int) -> tuple[nn.Module, str]:
    """(parent, attribute) of the final class layer: the last Linear/1×1 conv with ``num_classes``
    outputs in module order (resnet ``fc``, vgg ``classifier.6``, vit ``heads.head``, ...)."""
    found = None
    for name, module in model.named_modules():
        if (isinstance(module, nn.Linear) and module.out_features == num_classes) or (
            isinstance(module, nn.Conv2d) and module.out_channels == num_classes and module.kernel_size == (1, 1)
        ):
            found = name
    if found is None:
        raise ValueError(f"{type(model).__name__}: no final layer with {num_classes} outputs found")
    parent_name, _, attr = found.rpartition(".")
    return model.get_submodule(parent_name) if parent_name else model, attr


def _build_torchvision(name: str, num_classes: int, *, dropout: float | None, image_size: int | None) -> nn.Module:
    kwargs: dict = {"weights": None, "num_classes": num_classes}
    if image_size is not None and name.startswith("vit_"):
        # ViT's positional embedding is sized for one input resolution.
        kwargs["image_size"] = image_size
    models = _torchvision().models
    if dropout is None:
        return models.get_model(name, **kwargs)
    try:
        # VGG, MobileNet, EfficientNet, ... take their classifier dropout as an argument.
        return models.get_model(name, dropout=dropout, **kwargs)
    except TypeError as exc:
        if "dropout" not in str(exc):
            raise
    # Others (ResNet, DenseNet, ...): dropout right before the final class layer.
    model = models.get_model(name, **kwargs)
    parent, attr = _head(model, num_classes)
    setattr(parent, attr, nn.Sequential(nn.Dropout(dropout), getattr(parent, attr)))
    return model


def load_pretrained(
    model: nn.Module, state: dict, arch: str, num_classes: int, *, image_size: int | None = None
) -> nn.Module:
    """Copy every pretrained tensor whose name and shape fit; only the class head may differ."""
    own = model.state_dict()
    if arch.startswith("vit_") and image_size and "encoder.pos_embedding" in state:
        if state["encoder.pos_embedding"].shape != own["encoder.pos_embedding"].shape:
            from torchvision.models.vision_transformer import interpolate_embeddings

            state = interpolate_embeddings(image_size, model.patch_size, state)
    # A dropout wrapper shifts the head's name (fc.weight → fc.1.weight): map it back.
    renamed = {}
    for key in own:
        parts = key.split(".")
        if len(parts) >= 3 and parts[-2] == "1":
            renamed[".".join(parts[:-2] + parts[-1:])] = key
    loaded = {}
    for key, value in state.items():
        target = key if key in own else renamed.get(key, key)
        if target in own and own[target].shape == value.shape:
            loaded[target] = value
    # Only the 1000-class head may be left out; anything else means a file for another model.
    skipped = [k for k in state if k not in loaded and renamed.get(k, k) not in loaded]
    missing = [k for k in own if k not in loaded]
    bad = [k for k in skipped if not state[k].ndim or state[k].shape[0] != 1000]
    bad += [k for k in missing if not own[k].ndim or own[k].shape[0] != num_classes]
    if bad or not loaded:
        raise PipelineError(
            f"ImageNet weights do not fit {arch}: tensors {bad[:6]} do not match; "
            "is the weights file for this architecture?"
        )
    own.update(loaded)
    model.load_state_dict(own)
    return model


@register_classifier("shallow_cnn")
def _build_shallow_cnn(name, num_classes, *, width, blocks, batch_norm, dropout, image_size, init, torch_home):
    if init == "imagenet":
        raise ConfigError("shallow_cnn has no ImageNet weights; use init: scratch")
    return ShallowCNN(
        num_classes,
        width=32 if width is None else width,
        blocks=3 if blocks is None else blocks,
        batch_norm=True if batch_norm is None else batch_norm,
        dropout=dropout or 0.0,
    )


# choices.CLASSIFIER_ARCHS is torchvision's classification list (tests/test_hostile_inputs.py keeps it so).
@register_classifier(*(arch for arch in CLASSIFIER_ARCHS if arch != "shallow_cnn"))
def _build_torchvision_classifier(name, num_classes, *, width, blocks, batch_norm, dropout, image_size, init,
                                  torch_home):  # fmt: skip
    tv_name = f"{name}_bn" if name in BN_TOGGLE_ARCHS and batch_norm else name
    state = None
    if init == "imagenet":  # read the weights first: a missing file fails before a slow build
        if torch_home is None:
            raise ValueError("build_classifier: init='imagenet' needs torch_home (where the weights file lives)")
        state = load_imagenet_state_dict(tv_name, torch_home)
    model = _build_torchvision(tv_name, num_classes, dropout=dropout, image_size=image_size)
    if state is not None:
        load_pretrained(model, state, tv_name, num_classes, image_size=image_size)
    return model


def build_classifier(
    name: str,
    num_classes: int,
    *,
    width: int | None = 32,
    blocks: int | None = 3,
    batch_norm: bool | None = None,
    dropout: float | None = None,
    image_size: int | None = None,
    init: str = "scratch",
    torch_home: str | Path | None = None,
) -> nn.Module:
    """Build the registered classifier ``name`` with ``num_classes`` outputs.

    ``width``/``blocks`` shape ``shallow_cnn``; ``batch_norm`` switches BN on/off for
    ``shallow_cnn`` (default on) and VGG (``vgg11`` + True → ``vgg11_bn``; default: as named) and
    is ignored elsewhere. ``dropout`` (None = architecture default) is the dropout before the
    classifier. ``image_size`` (square side) is only used by ViT models (default 224).
    ``init="imagenet"`` loads ``<torch_home>/hub/checkpoints/<torchvision file>`` (no download).
    """
    if num_classes < 2:
        raise ValueError(f"build_classifier: num_classes must be >= 2, got {num_classes}")
    if init not in INITS:
        raise ValueError(f"build_classifier: init must be 'scratch' or 'imagenet', got {init!r}")
    builder = CLASSIFIERS.get(name)
    if builder is None:
        raise ValueError(f"unknown classifier arch {name!r}; choose one of {available_classifiers()}")
    return builder(name, num_classes, width=width, blocks=blocks, batch_norm=batch_norm, dropout=dropout,
                   image_size=image_size, init=init, torch_home=torch_home)  # fmt: skip


def available_classifiers() -> list[str]:
    """Every name accepted by :func:`build_classifier`."""
    return sorted(CLASSIFIERS)
