"""Instance-segmentation models: torchvision Mask R-CNN, built offline.

* ``maskrcnn_resnet50_fpn_v2``: torchvision's improved Mask R-CNN (BatchNorm in the heads).
* ``maskrcnn_resnet18_fpn`` / ``maskrcnn_resnet34_fpn``: the same detector on a light ResNet-FPN
  backbone (torchvision's detection API), so CPU runs and the demo stay within budget.

Models take a list of float images ``(3, H, W)`` in [0, 1] (the model normalises them itself) and,
in training mode, torchvision targets (see ``datasets.instances.InstanceStore.target``).
``min_size``/``max_size`` are the store size, so the internal transform never rescales a store
image; anchors shrink with the image so toy-sized images still get matching anchors.

Init: ``scratch``; ``imagenet`` (backbone from torchvision's ImageNet file in ``torch_home``, via
``models.weights``); ``coco`` (torchvision's COCO Mask R-CNN v2 file in
``<torch_home>/hub/checkpoints/``, box and mask predictors re-initialised for the dataset's classes).
Nothing is ever downloaded; files load with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

from ..errors import ConfigError, PipelineError
from .names import INSTANCE_BACKBONES
from .weights import COCO_WEIGHT_FILES, TORCHVISION_BASE_URL, load_imagenet_state_dict

__all__ = ["COCO_WEIGHT_FILES", "INSTANCE_ARCHS", "LIGHT_HEADS", "TOY_HEADS", "TOY_SETTINGS", "anchor_sizes",
           "build_instance_model", "coco_weights_file", "coco_weights_provenance", "load_coco_state_dict",
           "model_settings"]

# arch → ResNet depth of its backbone.
INSTANCE_ARCHS: dict[str, str] = INSTANCE_BACKBONES
INITS = ("scratch", "imagenet", "coco")
# State-dict prefixes of the class-specific predictors, re-initialised for the dataset's classes.
PREDICTOR_PREFIXES = ("roi_heads.box_predictor.", "roi_heads.mask_predictor.mask_fcn_logits.")


def anchor_sizes(image_size: tuple[int, int]) -> tuple[tuple[int, ...], ...]:
    """One anchor size per FPN level (5 levels), doubling per level; the smallest is about 1/8 of
    the short image side, a power of two between 8 and 32 (32 = torchvision's default, 32…512)."""
    short = min(int(image_size[0]), int(image_size[1]))
    base = int(2 ** min(5, max(3, round(math.log2(max(short, 1) / 8)))))
    return tuple((base * 2**level,) for level in range(5))


# Short image side below which the model is "toy-sized": fewer proposals, sampled RoIs and kept
# detections. The mask head runs per positive RoI and dominates a CPU step; torchvision's 512 RoIs
# per image (≤ 128 positives) and 100 detections are sized for 800-pixel photos with many objects.
# A toy image holds a handful of annotated objects: 32 RoIs (≤ 8 positives) per image; 30 detections
# (pasting masks and COCOeval scale with them; on the demo's look-alike AP is the same as with 50).
TOY_SIDE = 256
TOY_SETTINGS = {"rpn_pre_nms_top_n_train": 600, "rpn_post_nms_top_n_train": 300, "rpn_pre_nms_top_n_test": 300,
                "rpn_post_nms_top_n_test": 150, "box_batch_size_per_image": 32, "box_detections_per_img": 30}


# The light archs (ResNet-18/34) get light heads too: with torchvision's 256-channel FPN and 4-conv
# mask head, the heads cost several times the backbone on toy images (1.8 CPU-s per 96×64 image
# and step for ResNet-18). The v2 paper model keeps torchvision's heads unchanged.
# mask_roi_size: the mask head's RoI features (torchvision: 14, masks predicted at 28×28).
LIGHT_HEADS = {"fpn_channels": 128, "mask_head_convs": [128, 128], "box_representation": 256, "mask_roi_size": 14}
# ... and on toy-sized images narrower still: there a garment spans 20-60 pixels, so 14×14 masks
# from 7×7 RoI features resolve it, and the heads cost a third of what LIGHT_HEADS do (the
# backbone is then about half of a training step).
TOY_HEADS = {"fpn_channels": 64, "mask_head_convs": [64, 64], "mask_roi_size": 7}


def _toy(image_size: tuple[int, int]) -> bool:
    return min(int(image_size[0]), int(image_size[1])) < TOY_SIDE


def model_settings(arch: str, image_size: tuple[int, int]) -> dict:
    """What ``build_instance_model`` sets beyond torchvision's defaults for ``arch`` at ``image_size``
    (recorded in the run's metadata)."""
    settings = {"anchor_sizes": [s[0] for s in anchor_sizes(image_size)]}
    if not arch.endswith("_v2"):
        settings.update(LIGHT_HEADS)
        if _toy(image_size):
            settings.update(TOY_HEADS)
    if _toy(image_size):
        settings.update(TOY_SETTINGS)
    return settings


def coco_weights_file(torch_home: str | Path, arch: str) -> Path:
    name = COCO_WEIGHT_FILES.get(arch)
    if name is None:
        raise ConfigError(f"{arch!r} has no torchvision COCO weights (only {sorted(COCO_WEIGHT_FILES)}); "
                          "use init: imagenet or scratch")
    return Path(torch_home) / "hub" / "checkpoints" / name


def load_coco_state_dict(arch: str, torch_home: str | Path) -> dict:
    """torchvision's COCO Mask R-CNN state dict of ``arch`` from ``torch_home`` only (no download)."""
    import torch

    path = coco_weights_file(torch_home, arch)
    if not path.is_file():
        raise PipelineError(f"COCO weights for {arch} not found: place {path.name} at {path} "
                            f"(download {TORCHVISION_BASE_URL}{path.name}; runs never download)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated / not a state dict: say which file to replace
        raise PipelineError(f"cannot read COCO weights {path} ({type(exc).__name__}: {exc}); replace it with a "
                            f"fresh download of {TORCHVISION_BASE_URL}{path.name}") from exc
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise PipelineError(f"{path} is not a state dict; replace it with {TORCHVISION_BASE_URL}{path.name}")
    return state


def coco_weights_provenance(arch: str, torch_home: str | Path) -> dict:
    """``{"arch", "file", "published"}``: published = the file's sha256 starts with the hash prefix in
    torchvision's file name (True for the real download, False for a stand-in)."""
    path = coco_weights_file(torch_home, arch)
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return {"arch": arch, "file": path.name, "published": digest.hexdigest().startswith(path.stem.rsplit("-", 1)[-1])}


def _resnet(arch: str, pretrained: bool):
    """The ResNet under the FPN: v2 with BatchNorm (as torchvision); the light ones with frozen BN
    when pretrained (torchvision's default) and trainable BN from scratch (frozen BN at its initial
    statistics would not normalise anything)."""
    import torchvision
    from torch import nn
    from torchvision.ops import FrozenBatchNorm2d

    norm = nn.BatchNorm2d if arch.endswith("_v2") or not pretrained else FrozenBatchNorm2d
    return getattr(torchvision.models, INSTANCE_ARCHS[arch])(weights=None, norm_layer=norm)


def build_instance_model(arch: str, num_classes: int, init: str = "scratch", torch_home: str | Path | None = None,
                         image_size: tuple[int, int] = (800, 800), **overrides):
    """Mask R-CNN ``arch`` for ``num_classes`` classes including background (class 0).

    ``image_size`` (H, W): the store size; the model's transform keeps it unscaled, and below
    ``TOY_SIDE`` the RPN/RoI sampling uses ``TOY_SETTINGS``. ``overrides``: further ``MaskRCNN``
    keyword arguments (e.g. ``box_batch_size_per_image``).
    """
    from torch import nn
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
    from torchvision.models.detection.faster_rcnn import FastRCNNConvFCHead, FastRCNNPredictor, RPNHead, TwoMLPHead
    from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
    from torchvision.ops import MultiScaleRoIAlign
    from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool

    if arch not in INSTANCE_ARCHS:
        raise ConfigError(f"unknown instance-segmentation arch {arch!r}; choose one of {sorted(INSTANCE_ARCHS)}")
    if init not in INITS:
        raise ConfigError(f"init for {arch} must be one of {INITS}, got {init!r}")
    if num_classes < 2:
        raise ValueError(f"build_instance_model: num_classes must be >= 2 (background + classes), got {num_classes}")
    if init != "scratch" and torch_home is None:
        raise ValueError(f"build_instance_model: init={init!r} needs torch_home (where the weights file lives)")
    if init == "coco":
        coco_weights_file(torch_home, arch)  # ConfigError for archs without COCO weights
    pretrained = init != "scratch"
    resnet = _resnet(arch, pretrained)
    if init == "imagenet":
        state = {k: v for k, v in load_imagenet_state_dict(INSTANCE_ARCHS[arch], torch_home).items()
                 if not k.startswith("fc.")}
        try:
            missing, unexpected = resnet.load_state_dict(state, strict=False)
        except RuntimeError as exc:  # shape mismatch
            raise PipelineError(f"ImageNet weights of {INSTANCE_ARCHS[arch]} do not fit its backbone: {exc}") from exc
        if unexpected or any(not k.startswith("fc.") for k in missing):
            raise PipelineError(f"ImageNet weights of {INSTANCE_ARCHS[arch]} do not fit its backbone: "
                                f"missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}")
    # torchvision: 3 trainable stages when the backbone is pretrained, all 5 from scratch.
    backbone = _resnet_fpn_extractor(resnet, 3 if pretrained else 5,
                                     norm_layer=nn.BatchNorm2d if arch.endswith("_v2") else None)
    height, width = int(image_size[0]), int(image_size[1])
    anchors = AnchorGenerator(anchor_sizes((height, width)), ((0.5, 1.0, 2.0),) * 5)
    extra = {}
    if not arch.endswith("_v2"):  # light FPN and heads (LIGHT_HEADS / TOY_HEADS); predictors sized to match
        heads = model_settings(arch, (height, width))
        channels, convs = heads["fpn_channels"], heads["mask_head_convs"]
        backbone.fpn = FeaturePyramidNetwork([block[0].in_channels for block in backbone.fpn.inner_blocks], channels,
                                             extra_blocks=LastLevelMaxPool())
        backbone.out_channels = channels
        representation = heads["box_representation"]
        extra = {
            "box_head": TwoMLPHead(channels * 7 * 7, representation),
            "box_predictor": FastRCNNPredictor(representation, num_classes),
            "mask_roi_pool": MultiScaleRoIAlign(["0", "1", "2", "3"], heads["mask_roi_size"], sampling_ratio=2),
            "mask_head": MaskRCNNHeads(channels, convs, 1),
            "mask_predictor": MaskRCNNPredictor(convs[-1], convs[-1], num_classes),
        }
    else:
        extra = {
            "rpn_head": RPNHead(backbone.out_channels, anchors.num_anchors_per_location()[0], conv_depth=2),
            "box_head": FastRCNNConvFCHead((backbone.out_channels, 7, 7), [256, 256, 256, 256], [1024],
                                           norm_layer=nn.BatchNorm2d),
            "mask_head": MaskRCNNHeads(backbone.out_channels, [256, 256, 256, 256], 1, norm_layer=nn.BatchNorm2d),
        }
    sampling = dict(TOY_SETTINGS) if _toy((height, width)) else {}
    model = MaskRCNN(backbone, num_classes=None if "box_predictor" in extra else num_classes,
                     rpn_anchor_generator=anchors, min_size=min(height, width), max_size=max(height, width),
                     **extra, **{**sampling, **overrides})
    if init == "coco":
        coco = load_coco_state_dict(arch, torch_home)
        state = {k: v for k, v in coco.items() if not k.startswith(PREDICTOR_PREFIXES)}
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or any(not k.startswith(PREDICTOR_PREFIXES) for k in missing):
            raise PipelineError(
                f"COCO weights {coco_weights_file(torch_home, arch)} do not fit {arch}: "
                f"missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}"
            )
    return model
