"""Training augmentation on uint8 image batches ``(B, 3, H, W)``, on the batch's device.

Each augmentation is a registry entry (name → function). Flip, random-resized-crop and colour
jitter are batched (one tensor op for the whole batch, per-sample parameters); RandAugment runs
torchvision transforms v2 per sample (its ops differ per sample); with class maps it keeps to its
photometric ops (v2 RandAugment cannot move masks).

Randomness: every draw comes from a per-batch seed, per-sample parameters in batch order. Images
never influence the draws, so the original and rembg variants (same rows, same seed, same epoch)
receive exactly the same crops, flips, jitters and RandAugment ops.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from fashion_rembg.choices import augment_settings
from fashion_rembg.errors import ConfigError

__all__ = ["AUGMENTATIONS", "CROP_RATIO", "CROP_SCALE", "JITTER", "augment", "augment_mode", "crop_boxes", "resize"]

# Crops keep at least a quarter of the image: full-body fashion photos lose the garment below that.
CROP_SCALE = (0.25, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)  # relative to the output aspect ratio
JITTER = {"brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.1}

Maps = torch.Tensor | None
Size = tuple[int, int]


def _uniform(n: int, low: float, high: float, g: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=g, dtype=torch.float64) * (high - low) + low


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return x.round_().clamp_(0, 255).to(torch.uint8)


def resize(images: torch.Tensor, maps: Maps, size: Size) -> tuple[torch.Tensor, Maps]:
    """Images bilinear (antialiased), class maps nearest; a no-op at the same size."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images, maps
    x = F.interpolate(images.float(), size=tuple(size), mode="bilinear", antialias=True, align_corners=False)
    if maps is not None:
        maps = F.interpolate(maps[:, None].float(), size=tuple(size), mode="nearest")[:, 0].to(maps.dtype)
    return _to_uint8(x), maps


def hflip(images: torch.Tensor, maps: Maps, g: torch.Generator) -> tuple[torch.Tensor, Maps]:
    """Each sample mirrored left-right with probability 1/2."""
    flip = (torch.rand(images.shape[0], generator=g) < 0.5).to(images.device)
    if not bool(flip.any()):
        return images, maps
    images = torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)
    if maps is not None:
        maps = torch.where(flip.view(-1, 1, 1), maps.flip(-1), maps)
    return images, maps


def crop_boxes(n: int, height: int, width: int, out_aspect: float, g: torch.Generator) -> torch.Tensor:
    """``(n, 4)`` float boxes ``x0, y0, w, h`` as torchvision's RandomResizedCrop draws them
    (area ∈ CROP_SCALE, aspect ∈ CROP_RATIO × out_aspect, 10 tries, else the whole image)."""
    tries = 10
    area = height * width * _uniform(n * tries, *CROP_SCALE, g).view(n, tries)
    log_lo, log_hi = math.log(CROP_RATIO[0] * out_aspect), math.log(CROP_RATIO[1] * out_aspect)
    aspect = torch.exp(_uniform(n * tries, log_lo, log_hi, g).view(n, tries))
    cw = torch.sqrt(area * aspect).round()
    ch = torch.sqrt(area / aspect).round()
    ok = (cw >= 1) & (ch >= 1) & (cw <= width) & (ch <= height)
    pick = ok.to(torch.int8).argmax(1)  # first valid try
    cw = cw.gather(1, pick[:, None])[:, 0]
    ch = ch.gather(1, pick[:, None])[:, 0]
    ux, uy = _uniform(n, 0.0, 1.0, g), _uniform(n, 0.0, 1.0, g)
    x0 = torch.floor(ux * (width - cw + 1))
    y0 = torch.floor(uy * (height - ch + 1))
    none_ok = ~ok.any(1)
    x0[none_ok], y0[none_ok], cw[none_ok], ch[none_ok] = 0.0, 0.0, float(width), float(height)
    return torch.stack([x0, y0, cw, ch], 1)


def random_resized_crop(images: torch.Tensor, maps: Maps, g: torch.Generator, size: Size) -> tuple[torch.Tensor, Maps]:
    """Per-sample crops resized to ``size`` in one ``grid_sample`` call (maps: nearest)."""
    b, _, h, w = images.shape
    boxes = crop_boxes(b, h, w, size[1] / size[0], g)
    x0, y0, cw, ch = boxes.unbind(1)
    # align_corners=False: normalised -1..1 spans pixel edges, so a box maps linearly.
    theta = torch.zeros(b, 2, 3, dtype=torch.float64)
    theta[:, 0, 0] = cw / w
    theta[:, 0, 2] = (2 * x0 + cw) / w - 1
    theta[:, 1, 1] = ch / h
    theta[:, 1, 2] = (2 * y0 + ch) / h - 1
    grid = F.affine_grid(theta.float().to(images.device), [b, 1, *size], align_corners=False)
    x = F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
    if maps is not None:
        m = F.grid_sample(maps[:, None].float(), grid, mode="nearest", padding_mode="border", align_corners=False)
        maps = m[:, 0].to(maps.dtype)
    return _to_uint8(x), maps


_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=torch.float64)


def color_jitter(images: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Per-sample brightness, contrast, saturation (torchvision's blends and ranges, fixed order)
    and hue (a rotation of the chroma plane in YIQ space: one 3×3 matrix per sample)."""
    b = images.shape[0]
    dev = images.device
    j = JITTER

    def factor(amount):
        return _uniform(b, 1 - amount, 1 + amount, g).float().to(dev).view(b, 1, 1, 1)

    bright, contrast, sat = factor(j["brightness"]), factor(j["contrast"]), factor(j["saturation"])
    hue = _uniform(b, -j["hue"], j["hue"], g) * 2 * math.pi
    x = images.float().div_(255.0)
    x = (x * bright).clamp_(0, 1)
    weights = _YIQ[0].float().to(dev).view(1, 3, 1, 1)
    mean = (x * weights).sum(1, keepdim=True).mean((2, 3), keepdim=True)
    x = (contrast * x + (1 - contrast) * mean).clamp_(0, 1)
    gray = (x * weights).sum(1, keepdim=True)
    x = (sat * x + (1 - sat) * gray).clamp_(0, 1)
    rot = torch.zeros(b, 3, 3, dtype=torch.float64)
    rot[:, 0, 0] = 1.0
    rot[:, 1, 1] = rot[:, 2, 2] = torch.cos(hue)
    rot[:, 1, 2], rot[:, 2, 1] = -torch.sin(hue), torch.sin(hue)
    matrix = (torch.linalg.inv(_YIQ) @ rot @ _YIQ).float().to(dev)
    x = torch.einsum("bij,bjhw->bihw", matrix, x).clamp_(0, 1)
    return _to_uint8(x.mul_(255.0))


_GEOMETRIC_OPS = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")


def _rand_augment_transform(photometric_only: bool, num_ops: int, magnitude: int):
    from torchvision.transforms import v2

    if not photometric_only:
        return v2.RandAugment(num_ops=num_ops, magnitude=magnitude)

    class PhotometricRandAugment(v2.RandAugment):
        # v2's RandAugment refuses masks; for segmentation the geometry comes from flip/crop.
        _AUGMENTATION_SPACE = {k: v for k, v in v2.RandAugment._AUGMENTATION_SPACE.items() if k not in _GEOMETRIC_OPS}

    return PhotometricRandAugment(num_ops=num_ops, magnitude=magnitude)


def rand_augment(images: torch.Tensor, maps: Maps, g: torch.Generator, *, num_ops: int,
                 magnitude: int) -> tuple[torch.Tensor, Maps]:
    """torchvision v2 RandAugment (``num_ops`` ops per image at ``magnitude``), per sample (each draws
    its own ops). With class maps only its photometric ops are used, so the maps stay aligned."""
    transform = _rand_augment_transform(maps is not None, num_ops, magnitude)
    out = []
    # v2 draws from torch's global generator: fork it so dropout etc. are not disturbed.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(0, 2**62, (), generator=g)))
        for i in range(images.shape[0]):
            out.append(transform(images[i]))
    return torch.stack(out), maps


def _none(images, maps, g, size):
    return resize(images, maps, size)


def _flip(images, maps, g, size):
    return resize(*hflip(images, maps, g), size)


def _crop_flip(images, maps, g, size):
    return hflip(*random_resized_crop(images, maps, g, size), g)


def _color_jitter(images, maps, g, size):
    images, maps = resize(*hflip(images, maps, g), size)
    return color_jitter(images, g), maps


def _randaugment(images, maps, g, size, **strength):
    return resize(*rand_augment(*hflip(images, maps, g), g, **strength), size)


# name → fn(images uint8 (B,3,H,W), maps uint8 (B,H,W) | None, generator, out size, **settings) → same, at out
# size; settings from choices.augment_settings (RandAugment's strength).
AUGMENTATIONS: dict[str, Callable[..., tuple[torch.Tensor, Maps]]] = {
    "none": _none,
    "flip": _flip,
    "crop_flip": _crop_flip,
    "color_jitter": _color_jitter,
    "randaugment": _randaugment,
}


def augment_mode(mode: str) -> tuple[str, dict[str, int]]:
    """``(AUGMENTATIONS name, its settings)`` of an augment value (``choices.augment_settings``), or a
    ValueError naming it."""
    try:
        return augment_settings(mode)
    except ConfigError as err:
        raise ValueError(f"unknown augment: {err}") from None


def augment(
    images: torch.Tensor, maps: Maps, *, mode: str, seed: int, size: Size | None = None
) -> tuple[torch.Tensor, Maps]:
    """Apply augmentation ``mode`` (a name of AUGMENTATIONS, or ``randaugment-n<ops>-m<magnitude>``) to a
    uint8 batch (and its class maps), output at ``size`` (default: the input size). Deterministic given
    ``seed``."""
    name, settings = augment_mode(mode)
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"augment: expected uint8 images (B, 3, H, W), got {tuple(images.shape)} {images.dtype}")
    size = tuple(size) if size is not None else tuple(images.shape[-2:])
    g = torch.Generator().manual_seed(int(seed))
    return AUGMENTATIONS[name](images, maps, g, size, **settings)
