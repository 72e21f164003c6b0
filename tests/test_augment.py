"""Each augmentation: shapes, determinism, what it changes, and that it ignores image content."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fashion_rembg.choices import AUGMENTATIONS as CONFIG_AUGMENTATIONS
from fashion_rembg.choices import augment_settings, canonical_augment
from fashion_rembg.errors import ConfigError
from fashion_rembg.training.augment import AUGMENTATIONS, CROP_SCALE, augment, crop_boxes, resize
from fashion_rembg.training.data import BatchFeeder


def _batch(n=12, h=32, w=24, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, h, w), generator=g, dtype=torch.uint8)


def _coords(n=12, h=32, w=24) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose R/G channels encode x/y (a geometry probe) and class maps marking the left half."""
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    img = torch.stack([xs * 255 // (w - 1), ys * 255 // (h - 1), torch.full_like(xs, 128)]).to(torch.uint8)
    maps = (xs < w // 2).to(torch.uint8)
    return img.expand(n, 3, h, w).clone(), maps.expand(n, h, w).clone()


def test_registry_matches_config_names():
    assert tuple(AUGMENTATIONS) == CONFIG_AUGMENTATIONS


@pytest.mark.parametrize("mode", list(AUGMENTATIONS))
def test_shape_dtype_determinism_and_seed_dependence(mode):
    x = _batch()
    a, _ = augment(x, None, mode=mode, seed=3)
    b, _ = augment(x, None, mode=mode, seed=3)
    assert a.dtype == torch.uint8 and a.shape == x.shape
    assert torch.equal(a, b)
    c, _ = augment(x, None, mode=mode, seed=4)
    if mode == "none":
        assert torch.equal(a, x) and torch.equal(c, x)
    else:
        assert not torch.equal(a, x) and not torch.equal(a, c)


@pytest.mark.parametrize("mode", list(AUGMENTATIONS))
def test_output_size_and_maps_follow(mode):
    img, maps = _coords()
    out, out_maps = augment(img, maps, mode=mode, seed=1, size=(16, 12))
    assert out.shape == (12, 3, 16, 12) and out_maps.shape == (12, 16, 12) and out_maps.dtype == torch.uint8
    if mode in ("none", "flip", "crop_flip"):
        # The map says "left half of the original image"; the x-coordinate channel says where each
        # output pixel came from. Away from the boundary both must agree.
        x_src = out[:, 0].float() / 255 * 23
        left = x_src < 11.5 - 1.5
        right = x_src > 11.5 + 1.5
        assert (out_maps[left] == 1).all() and (out_maps[right] == 0).all()
    else:  # photometric ops after a flip: each map is the resized map or its mirror image
        ref = resize(img, maps, (16, 12))[1]
        assert all(torch.equal(out_maps[i], ref[i]) or torch.equal(out_maps[i], ref[i].flip(-1)) for i in range(12))


def test_flip_is_per_sample():
    img, _ = _coords(n=16)
    out, _ = augment(img, None, mode="flip", seed=7)
    flipped = [torch.equal(out[i], img[i].flip(-1)) for i in range(16)]
    kept = [torch.equal(out[i], img[i]) for i in range(16)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert 0 < sum(flipped) < 16


def test_crop_boxes_inside_image_and_area_range():
    boxes = crop_boxes(500, 96, 64, 64 / 96, torch.Generator().manual_seed(0))
    x0, y0, w, h = boxes.unbind(1)
    assert (x0 >= 0).all() and (y0 >= 0).all() and (x0 + w <= 64).all() and (y0 + h <= 96).all()
    area = (w * h) / (96 * 64)
    assert area.min() >= CROP_SCALE[0] * 0.9 and area.max() <= 1.0
    assert area.std() > 0.1  # really random, not a fixed crop


def test_crop_flip_zooms_in():
    img, _ = _coords(n=32)
    out, _ = augment(img, None, mode="crop_flip", seed=0)
    # A crop shows a narrower x-range than the full image in most samples.
    span = out[:, 0].float().amax((1, 2)) - out[:, 0].float().amin((1, 2))
    assert (span < 250).float().mean() > 0.5


def test_color_jitter_keeps_uniform_images_uniform_and_changes_colour():
    img = torch.zeros(8, 3, 10, 10, dtype=torch.uint8)
    img[:, 0], img[:, 1], img[:, 2] = 180, 90, 40
    out, _ = augment(img, None, mode="color_jitter", seed=2)
    flat = out.view(8, 3, -1)
    assert (flat.amax(2) - flat.amin(2)).max() <= 1  # photometric only (flip of a uniform image is a no-op)
    assert len({tuple(flat[i, :, 0].tolist()) for i in range(8)}) == 8  # per-sample factors


def test_randaugment_draws_per_sample_and_keeps_global_rng():
    x = _batch(n=16)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    out, _ = augment(x, None, mode="randaugment", seed=5)
    assert torch.equal(torch.rand(3), expected)  # dropout etc. are not disturbed
    changed = [not torch.equal(out[i], x[i]) and not torch.equal(out[i], x[i].flip(-1)) for i in range(16)]
    assert sum(changed) >= 8


def test_randaugment_strength_names():
    assert augment_settings("randaugment") == ("randaugment", {"num_ops": 2, "magnitude": 9})  # torchvision's
    assert augment_settings("randaugment-n1-m9") == ("randaugment", {"num_ops": 1, "magnitude": 9})
    assert augment_settings("randaugment-m5") == ("randaugment", {"num_ops": 2, "magnitude": 5})
    assert augment_settings("flip") == ("flip", {})
    # One spelling each, so the same augmentation cannot get two experiment ids.
    assert canonical_augment("randaugment-n2-m9") == "randaugment"
    assert canonical_augment("randaugment-n1") == "randaugment-n1-m9"
    for bad, why in [("randaugment-n0", "num_ops must be 1..14"), ("randaugment-m31", "magnitude must be 0..30"),
                     ("flip-n1", "is not one of"), ("randaug", "is not one of")]:
        with pytest.raises(ConfigError, match=why):
            augment_settings(bad)


def test_randaugment_strength_reaches_the_transform():
    x = _batch(n=16)
    one, _ = augment(x, None, mode="randaugment-n1-m9", seed=5)
    again, _ = augment(x, None, mode="randaugment-n1-m9", seed=5)
    two, _ = augment(x, None, mode="randaugment", seed=5)
    assert torch.equal(one, again)  # deterministic given the seed
    assert not torch.equal(one, two)
    # Magnitude 0 leaves the magnitude-scaled ops (shear, rotate, colour, ...) at the identity: fewer pixels move.
    calm, _ = augment(x, None, mode="randaugment-n1-m0", seed=5)
    strong, _ = augment(x, None, mode="randaugment-n1-m30", seed=5)
    assert (calm.float() - x.float()).abs().mean() < (strong.float() - x.float()).abs().mean()
    with pytest.raises(ValueError, match="num_ops must be 1..14"):
        augment(x, None, mode="randaugment-n15", seed=5)


@pytest.mark.parametrize("mode", ["flip", "crop_flip"])
def test_same_rows_same_seed_same_geometry_whatever_the_images(mode):
    """Original and rembg stores (different pixels, same rows) get the same augmentation."""
    rng = np.random.default_rng(0)
    original = rng.integers(0, 256, (20, 32, 24, 3), dtype=np.uint8)
    composite = (255 - original).astype(np.uint8)  # any per-pixel change; commutes with geometry
    labels = np.arange(20) % 3
    outs = []
    for store in (original, composite):
        feeder = BatchFeeder(store, labels, np.arange(20), batch_size=8, device=torch.device("cpu"))
        gen = torch.Generator().manual_seed(11)
        outs.append([(x, y) for x, y, _ in feeder.batches(generator=gen, shuffle=True, augment=mode)])
    for (xa, ya), (xb, yb) in zip(*outs):
        assert torch.equal(ya, yb)
        # Normalised x = (v - m) / s: 255 - v maps to (255 - 2m)/s - x; compare in pixel units.
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255
        va, vb = xa * std + mean, xb * std + mean
        assert (va + vb - 255).abs().max() <= 1.01  # rounding of bilinear samples only


def test_unknown_mode_and_bad_input():
    with pytest.raises(ValueError, match="augment"):
        augment(_batch(), None, mode="rotate", seed=0)
    with pytest.raises(ValueError, match="uint8"):
        augment(_batch().float(), None, mode="flip", seed=0)
