"""ImageNet weights of torchvision classifiers, looked up offline in a project-local TORCH_HOME.

The file names come from torchvision's weights API (``get_model_weights(arch).DEFAULT.url``);
the static table below lets the workflow name the files while it builds the DAG without
importing torch (tests check it against the live API). Weights live where torch's hub cache puts
them: ``<torch_home>/hub/checkpoints/<file>``, so a populated TORCH_HOME works for both.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..atomic import save_torch
from ..errors import ConfigError, PipelineError
from .names import INSTANCE_BACKBONES

TORCHVISION_BASE_URL = "https://download.pytorch.org/models/"
# Mask R-CNN arch → file name of torchvision's COCO weights (MaskRCNN_ResNet50_FPN_V2_Weights.DEFAULT,
# torchvision 0.29); static so the workflow can name the file without importing torch (a test checks
# it against the enum).
COCO_WEIGHT_FILES: dict[str, str] = {"maskrcnn_resnet50_fpn_v2": "maskrcnn_resnet50_fpn_v2_coco-73cbd019.pth"}
# arch → file name of its DEFAULT ImageNet weights (torchvision 0.29).
WEIGHT_FILES: dict[str, str] = {
    "alexnet": "alexnet-owt-7be5be79.pth",
    "convnext_base": "convnext_base-6075fbad.pth",
    "convnext_large": "convnext_large-ea097f82.pth",
    "convnext_small": "convnext_small-0c510722.pth",
    "convnext_tiny": "convnext_tiny-983f1562.pth",
    "densenet121": "densenet121-a639ec97.pth",
    "densenet161": "densenet161-8d451a50.pth",
    "densenet169": "densenet169-b2777c0a.pth",
    "densenet201": "densenet201-c1103571.pth",
    "efficientnet_b0": "efficientnet_b0_rwightman-7f5810bc.pth",
    "efficientnet_b1": "efficientnet_b1-c27df63c.pth",
    "efficientnet_b2": "efficientnet_b2_rwightman-c35c1473.pth",
    "efficientnet_b3": "efficientnet_b3_rwightman-b3899882.pth",
    "efficientnet_b4": "efficientnet_b4_rwightman-23ab8bcd.pth",
    "efficientnet_b5": "efficientnet_b5_lukemelas-1a07897c.pth",
    "efficientnet_b6": "efficientnet_b6_lukemelas-24a108a5.pth",
    "efficientnet_b7": "efficientnet_b7_lukemelas-c5b4e57e.pth",
    "efficientnet_v2_l": "efficientnet_v2_l-59c71312.pth",
    "efficientnet_v2_m": "efficientnet_v2_m-dc08266a.pth",
    "efficientnet_v2_s": "efficientnet_v2_s-dd5fe13b.pth",
    "googlenet": "googlenet-1378be20.pth",
    "inception_v3": "inception_v3_google-0cc3c7bd.pth",
    "maxvit_t": "maxvit_t-bc5ab103.pth",
    "mnasnet0_5": "mnasnet0.5_top1_67.823-3ffadce67e.pth",
    "mnasnet0_75": "mnasnet0_75-7090bc5f.pth",
    "mnasnet1_0": "mnasnet1.0_top1_73.512-f206786ef8.pth",
    "mnasnet1_3": "mnasnet1_3-a4c69d6f.pth",
    "mobilenet_v2": "mobilenet_v2-7ebf99e0.pth",
    "mobilenet_v3_large": "mobilenet_v3_large-5c1a4163.pth",
    "mobilenet_v3_small": "mobilenet_v3_small-047dcff4.pth",
    "regnet_x_16gf": "regnet_x_16gf-ba3796d7.pth",
    "regnet_x_1_6gf": "regnet_x_1_6gf-a12f2b72.pth",
    "regnet_x_32gf": "regnet_x_32gf-6eb8fdc6.pth",
    "regnet_x_3_2gf": "regnet_x_3_2gf-7071aa85.pth",
    "regnet_x_400mf": "regnet_x_400mf-62229a5f.pth",
    "regnet_x_800mf": "regnet_x_800mf-94a99ebd.pth",
    "regnet_x_8gf": "regnet_x_8gf-2b70d774.pth",
    "regnet_y_128gf": "regnet_y_128gf_swag-c8ce3e52.pth",
    "regnet_y_16gf": "regnet_y_16gf-3e4a00f9.pth",
    "regnet_y_1_6gf": "regnet_y_1_6gf-0d7bc02a.pth",
    "regnet_y_32gf": "regnet_y_32gf-8db6d4b5.pth",
    "regnet_y_3_2gf": "regnet_y_3_2gf-9180c971.pth",
    "regnet_y_400mf": "regnet_y_400mf-e6988f5f.pth",
    "regnet_y_800mf": "regnet_y_800mf-58fc7688.pth",
    "regnet_y_8gf": "regnet_y_8gf-dc2b1b54.pth",
    "resnet101": "resnet101-cd907fc2.pth",
    "resnet152": "resnet152-f82ba261.pth",
    "resnet18": "resnet18-f37072fd.pth",
    "resnet34": "resnet34-b627a593.pth",
    "resnet50": "resnet50-11ad3fa6.pth",
    "resnext101_32x8d": "resnext101_32x8d-110c445d.pth",
    "resnext101_64x4d": "resnext101_64x4d-173b62eb.pth",
    "resnext50_32x4d": "resnext50_32x4d-1a0047aa.pth",
    "shufflenet_v2_x0_5": "shufflenetv2_x0.5-f707e7126e.pth",
    "shufflenet_v2_x1_0": "shufflenetv2_x1-5666bf0f80.pth",
    "shufflenet_v2_x1_5": "shufflenetv2_x1_5-3c479a10.pth",
    "shufflenet_v2_x2_0": "shufflenetv2_x2_0-8be3c8ee.pth",
    "squeezenet1_0": "squeezenet1_0-b66bff10.pth",
    "squeezenet1_1": "squeezenet1_1-b8a52dc0.pth",
    "swin_b": "swin_b-68c6b09e.pth",
    "swin_s": "swin_s-5e29d889.pth",
    "swin_t": "swin_t-704ceda3.pth",
    "swin_v2_b": "swin_v2_b-781e5279.pth",
    "swin_v2_s": "swin_v2_s-637d8ceb.pth",
    "swin_v2_t": "swin_v2_t-b137f0e2.pth",
    "vgg11": "vgg11-8a719046.pth",
    "vgg11_bn": "vgg11_bn-6002323d.pth",
    "vgg13": "vgg13-19584684.pth",
    "vgg13_bn": "vgg13_bn-abd245e5.pth",
    "vgg16": "vgg16-397923af.pth",
    "vgg16_bn": "vgg16_bn-6c64b313.pth",
    "vgg19": "vgg19-dcbb9e9d.pth",
    "vgg19_bn": "vgg19_bn-c79401a0.pth",
    "vit_b_16": "vit_b_16-c867db91.pth",
    "vit_b_32": "vit_b_32-d86f8d99.pth",
    "vit_h_14": "vit_h_14_swag-80465313.pth",
    "vit_l_16": "vit_l_16-852ce7e3.pth",
    "vit_l_32": "vit_l_32-c7638314.pth",
    "wide_resnet101_2": "wide_resnet101_2-d733dc28.pth",
    "wide_resnet50_2": "wide_resnet50_2-9ba9bcbe.pth",
}


def torchvision_arch(exp: dict) -> str:
    """The torchvision model whose ImageNet weights an experiment loads.

    Classification: the arch (VGG with batch_norm → its ``*_bn`` twin); segmentation: the
    encoder (smp's ResNet encoders are torchvision ResNets without the head); instance: the
    backbone of the Mask R-CNN arch.
    """
    if exp.get("task") == "segmentation":
        return exp["encoder"]
    if exp.get("task") == "instance":  # the ResNet under the FPN
        return INSTANCE_BACKBONES[exp["arch"]]
    arch = exp["arch"]
    if arch.startswith("vgg") and not arch.endswith("_bn") and exp.get("batch_norm"):
        return f"{arch}_bn"
    return arch


def weights_url(arch: str) -> str | None:
    name = WEIGHT_FILES.get(arch)
    return TORCHVISION_BASE_URL + name if name else None


def weights_file(torch_home: str | Path, arch: str) -> Path:
    name = WEIGHT_FILES.get(arch)
    if name is None:
        raise ConfigError(f"{arch!r} has no torchvision ImageNet weights; use init: scratch")
    return Path(torch_home) / "hub" / "checkpoints" / name


def missing_weights_message(torch_home: str | Path, arch: str) -> str:
    path = weights_file(torch_home, arch)
    return (
        f"ImageNet weights for {arch} not found: place {path.name} at {path} "
        f"(download {weights_url(arch)}; runs never download)"
    )


def load_imagenet_state_dict(arch: str, torch_home: str | Path) -> dict:
    """The ImageNet state dict of torchvision model ``arch``, read from ``torch_home`` only.

    Goes through torchvision's weights API (``weights.get_state_dict``) with the hub cache pointed
    at ``<torch_home>/hub/checkpoints``; the file must already be there (no download).
    """
    path = weights_file(torch_home, arch)
    if not path.is_file():
        raise PipelineError(missing_weights_message(torch_home, arch))
    import torchvision

    weights = torchvision.models.get_model_weights(arch).DEFAULT
    if os.path.basename(weights.url) != path.name:  # the static table is out of date
        raise PipelineError(
            f"torchvision expects {os.path.basename(weights.url)} for {arch}, the pipeline looked for {path.name}; "
            "update fashion_rembg.models.weights.WEIGHT_FILES"
        )
    try:
        return weights.get_state_dict(
            model_dir=str(path.parent), map_location="cpu", progress=False, check_hash=True, weights_only=True
        )
    except Exception as exc:  # truncated / not a state dict: say which file to replace
        raise PipelineError(
            f"cannot read ImageNet weights {path} ({type(exc).__name__}: {exc}); "
            f"replace it with a fresh download of {weights_url(arch)}"
        ) from exc


def weights_provenance(exp: dict, torch_home: str | Path) -> dict:
    """What an ``init: imagenet`` experiment loads: ``{"arch", "file", "published"}``, where
    ``published`` says whether the file's sha256 starts with the prefix in its torchvision name
    (True for the real download, False for the demo's stand-in or any other substitute)."""
    import hashlib

    arch = torchvision_arch(exp)
    path = weights_file(torch_home, arch)
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    prefix = path.stem.rsplit("-", 1)[-1]
    return {"arch": arch, "file": path.name, "published": digest.hexdigest().startswith(prefix)}


def write_standin_weights(arch: str, path: str | Path, seed: int = 0) -> Path:
    """Demo stand-in for ImageNet weights: a seeded random init of ``arch`` in torchvision's file
    format (1000-class head), so the offline demo exercises the same loading code as real weights.
    It carries no ImageNet features."""
    import torch
    import torchvision

    torch.manual_seed(seed)
    model = torchvision.models.get_model(arch, weights=None, num_classes=1000)
    path = Path(path)
    save_torch(path, model.state_dict())
    return path


def fetch_weights(arch: str, path: str | Path) -> Path:
    """Download ``arch``'s ImageNet weights to ``path`` (checked against the sha256 prefix in the
    file name); offline → a clear error saying what to place where."""
    import torch

    path = Path(path)
    url = weights_url(arch) or (TORCHVISION_BASE_URL + COCO_WEIGHT_FILES[arch] if arch in COCO_WEIGHT_FILES else None)
    if url is None:
        raise PipelineError(f"{arch!r} has no torchvision ImageNet weights; use init: scratch")
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = path.stem.rsplit("-", 1)[-1]
    try:
        torch.hub.download_url_to_file(url, str(path), hash_prefix=prefix, progress=False)
    except Exception as exc:
        raise PipelineError(
            f"could not download {url} ({type(exc).__name__}: {exc}); without network, place {path.name} at {path}"
        ) from exc
    return path


def arch_for_file(name: str) -> str:
    """The torchvision arch whose DEFAULT ImageNet weights are stored under file ``name``."""
    for arch, file in WEIGHT_FILES.items():
        if file == name:
            return arch
    raise PipelineError(f"{name} is not a torchvision ImageNet weights file name known to fashion_rembg.models.weights")


def write_standin_coco_weights(arch: str, path: str | Path, seed: int = 0) -> Path:
    """Demo/test stand-in for torchvision's COCO Mask R-CNN file: a seeded random init of the same
    model (91 COCO classes) in its state-dict format; no COCO features."""
    import torch
    import torchvision

    torch.manual_seed(seed)
    model = getattr(torchvision.models.detection, arch)(weights=None, weights_backbone=None)
    path = Path(path)
    save_torch(path, model.state_dict())
    return path


def provide_weights(path: str | Path, *, standin: bool) -> Path:
    """Rule entry point: write the demo stand-in or fetch the real file for ``path``'s name
    (ImageNet weights of a torchvision model, or COCO Mask R-CNN weights)."""
    name = Path(path).name
    coco_arch = next((arch for arch, file in COCO_WEIGHT_FILES.items() if file == name), None)
    if coco_arch is not None:
        return write_standin_coco_weights(coco_arch, path) if standin else fetch_weights(coco_arch, path)
    arch = arch_for_file(name)
    return write_standin_weights(arch, path) if standin else fetch_weights(arch, path)
