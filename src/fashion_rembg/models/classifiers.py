"""Image classifiers: the paper's shallow CNN plus any torchvision classification model.

All models take normalised float images ``(B, 3, H, W)`` and return logits ``(B, num_classes)``.
"""

from __future__ import annotations

from typing import Callable

import torch
import torchvision
from torch import nn

__all__ = ["CLASSIFIERS", "ShallowCNN", "available_classifiers", "build_classifier"]


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


def _build_shallow(num_classes: int, **kw) -> nn.Module:
    return ShallowCNN(
        num_classes,
        width=kw["width"],
        blocks=kw["blocks"],
        batch_norm=kw["batch_norm"],
        dropout=kw["dropout"],
    )


def _torchvision_names() -> list[str]:
    # Only classification models live directly in torchvision.models (not .segmentation etc.).
    return sorted(torchvision.models.list_models(module=torchvision.models))


def _build_torchvision(name: str, num_classes: int, image_size: int | None = None) -> nn.Module:
    kwargs: dict = {}
    if image_size is not None and name.startswith("vit_"):
        # ViT's positional embedding is sized for one input resolution.
        kwargs["image_size"] = image_size
    # Random init only. ImageNet initialisation belongs here: pass
    # `weights=torchvision.models.get_model_weights(name).DEFAULT` (weights must be present in
    # the torch hub cache: no network at run time) and replace the head for `num_classes`.
    return torchvision.models.get_model(name, weights=None, num_classes=num_classes, **kwargs)


# Named entries the pipeline config refers to; any other torchvision classifier name also works.
CLASSIFIERS: dict[str, Callable[..., nn.Module]] = {"shallow_cnn": _build_shallow}
for _name in (
    "resnet18",
    "resnet50",
    "vgg11",
    "vgg11_bn",
    "mobilenet_v3_small",
    "efficientnet_b0",
    "vit_b_16",
):
    CLASSIFIERS[_name] = lambda num_classes, _n=_name, **kw: _build_torchvision(
        _n, num_classes, kw.get("image_size")
    )
del _name


def available_classifiers() -> list[str]:
    """Every name accepted by :func:`build_classifier`."""
    return sorted(set(CLASSIFIERS) | set(_torchvision_names()))


def build_classifier(
    name: str,
    num_classes: int,
    *,
    width: int = 32,
    blocks: int = 3,
    batch_norm: bool = True,
    dropout: float = 0.0,
    image_size: int | None = None,
) -> nn.Module:
    """Build a randomly initialised classifier.

    ``width``, ``blocks``, ``batch_norm`` and ``dropout`` configure ``shallow_cnn`` and are ignored
    by torchvision architectures (they have fixed designs). ``image_size`` (square side) is only
    used by ViT models, whose default is 224.
    """
    if num_classes < 2:
        raise ValueError(f"build_classifier: num_classes must be >= 2, got {num_classes}")
    kw = dict(width=width, blocks=blocks, batch_norm=batch_norm, dropout=dropout, image_size=image_size)
    if name in CLASSIFIERS:
        return CLASSIFIERS[name](num_classes, **kw)
    if name in _torchvision_names():
        return _build_torchvision(name, num_classes, image_size)
    raise ValueError(
        f"unknown classifier arch {name!r}; choose one of {sorted(CLASSIFIERS)} "
        f"or any torchvision classification model: {_torchvision_names()}"
    )
