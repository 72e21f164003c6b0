"""Semantic segmentation models (segmentation_models_pytorch).

Models take normalised float images ``(B, 3, H, W)`` (H, W divisible by 32 for depth-5 encoders)
and return per-pixel logits ``(B, num_classes, H, W)``. ``init="imagenet"`` loads torchvision's
ImageNet weights of the encoder (ResNet/ResNeXt: smp's encoders are torchvision ResNets without
the head) from a local TORCH_HOME; smp's own weight download is never used.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from fashion_rembg.errors import ConfigError, PipelineError
from fashion_rembg.models.weights import load_imagenet_state_dict

__all__ = ["SEGMENTERS", "build_segmenter"]

# Config name → smp class name (looked up lazily so importing this module stays cheap).
SEGMENTERS: dict[str, str] = {
    "unet": "Unet",
    "fpn": "FPN",
    "deeplabv3plus": "DeepLabV3Plus",
}


def build_segmenter(
    name: str = "unet",
    encoder: str = "resnet18",
    num_classes: int = 14,
    *,
    init: str = "scratch",
    torch_home: str | Path | None = None,
) -> nn.Module:
    """Build ``name`` with an ``encoder`` backbone and ``num_classes`` output channels.

    ``encoder_weights=None``: no download; ``init="imagenet"`` fills the encoder from
    ``<torch_home>/hub/checkpoints/<torchvision file of encoder>``.
    """
    import segmentation_models_pytorch as smp

    key = name.lower()
    if key not in SEGMENTERS:
        raise ValueError(f"unknown segmenter arch {name!r}; choose one of {sorted(SEGMENTERS)}")
    if num_classes < 2:
        raise ValueError(f"build_segmenter: num_classes must be >= 2 (background + classes), got {num_classes}")
    if encoder not in smp.encoders.get_encoder_names():
        raise ValueError(
            f"unknown segmentation encoder {encoder!r}; see "
            "segmentation_models_pytorch.encoders.get_encoder_names() (e.g. resnet18, resnet34, resnet50)"
        )
    if init not in ("scratch", "imagenet"):
        raise ValueError(f"build_segmenter: init must be 'scratch' or 'imagenet', got {init!r}")
    cls = getattr(smp, SEGMENTERS[key])
    model = cls(encoder_name=encoder, encoder_weights=None, in_channels=3, classes=num_classes)
    if init == "imagenet":
        if not encoder.startswith(("resnet", "resnext")):
            raise ConfigError(f"init: imagenet for segmentation supports resnet/resnext encoders, got {encoder!r}")
        if torch_home is None:
            raise ValueError("build_segmenter: init='imagenet' needs torch_home (where the weights file lives)")
        state = {k: v for k, v in load_imagenet_state_dict(encoder, torch_home).items() if not k.startswith("fc.")}
        try:
            model.encoder.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise PipelineError(f"ImageNet weights of {encoder} do not fit smp's {encoder} encoder: {exc}") from exc
    return model
