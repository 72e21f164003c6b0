"""Semantic segmentation models (segmentation_models_pytorch), randomly initialised.

Models take normalised float images ``(B, 3, H, W)`` (H, W divisible by 32 for depth-5 encoders)
and return per-pixel logits ``(B, num_classes, H, W)``.
"""

from __future__ import annotations

from torch import nn

__all__ = ["SEGMENTERS", "build_segmenter"]

# Config name → smp class name (looked up lazily so importing this module stays cheap).
SEGMENTERS: dict[str, str] = {
    "unet": "Unet",
    "fpn": "FPN",
    "deeplabv3plus": "DeepLabV3Plus",
}


def build_segmenter(name: str = "unet", encoder: str = "resnet18", num_classes: int = 14) -> nn.Module:
    """Build ``name`` with an ``encoder`` backbone and ``num_classes`` output channels.

    ``encoder_weights=None``: no ImageNet download (no network at run time).
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
    cls = getattr(smp, SEGMENTERS[key])
    return cls(encoder_name=encoder, encoder_weights=None, in_channels=3, classes=num_classes)
