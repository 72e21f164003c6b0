"""Model registries: every entry builds and produces the right output shape."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from fashion_rembg.models.classifiers import CLASSIFIERS, ShallowCNN, available_classifiers, build_classifier
from fashion_rembg.models.segmenters import SEGMENTERS, build_segmenter


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)


@pytest.mark.parametrize("name", sorted(n for n in CLASSIFIERS if not n.startswith("vit_")))
def test_registry_classifier_forward_shape(name):
    model = build_classifier(name, 5).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 5)


def test_vit_constructible_and_image_size_forwarded(monkeypatch):
    model = build_classifier("vit_b_16", 4)
    assert model.heads.head.out_features == 4 and model.image_size == 224
    # Building a second ViT-B is slow; check the store size reaches torchvision instead.
    calls = []
    monkeypatch.setattr(torchvision.models, "get_model", lambda name, **kw: calls.append((name, kw)))
    build_classifier("vit_b_16", 4, image_size=64)
    build_classifier("resnet18", 4, image_size=64)  # CNNs do not take image_size
    assert calls == [
        ("vit_b_16", {"weights": None, "num_classes": 4, "image_size": 64}),
        ("resnet18", {"weights": None, "num_classes": 4}),
    ]


def test_any_torchvision_classifier_name_and_unknown_name():
    assert "resnet34" not in CLASSIFIERS and "resnet34" in available_classifiers()
    assert build_classifier("squeezenet1_1", 3).eval()(torch.randn(1, 3, 64, 64)).shape == (1, 3)
    with pytest.raises(ValueError, match="shallow_cnn") as exc:
        build_classifier("resnet1000", 3)
    assert "resnet1000" in str(exc.value) and "resnet18" in str(exc.value)


@pytest.mark.parametrize("batch_norm", [True, False])
def test_shallow_cnn_structure(batch_norm):
    model = build_classifier("shallow_cnn", 7, width=8, blocks=4, batch_norm=batch_norm, dropout=0.3)
    assert isinstance(model, ShallowCNN)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert [c.out_channels for c in convs] == [8, 16, 32, 64]  # width * 2^i
    assert len(bns) == (4 if batch_norm else 0)
    assert all((c.bias is None) == batch_norm for c in convs)
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 4
    assert model.dropout.p == 0.3 and model.classifier.in_features == 64
    # Global average pooling: any input size divisible by 2^blocks works.
    assert model.eval()(torch.randn(3, 3, 48, 80)).shape == (3, 7)


def test_shallow_cnn_rejects_bad_config():
    with pytest.raises(ValueError, match="blocks"):
        build_classifier("shallow_cnn", 3, blocks=5)
    with pytest.raises(ValueError, match="dropout"):
        build_classifier("shallow_cnn", 3, dropout=1.0)
    with pytest.raises(ValueError, match="num_classes"):
        build_classifier("shallow_cnn", 1)


@pytest.mark.parametrize("name", sorted(SEGMENTERS))
def test_segmenter_forward_shape(name):
    model = build_segmenter(name, "resnet18", num_classes=6).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 96))
    assert out.shape == (1, 6, 64, 96)


def test_segmenter_defaults_and_errors():
    model = build_segmenter()
    assert model.segmentation_head[0].out_channels == 14  # ModaNet: 13 categories + background
    with pytest.raises(ValueError, match="unknown segmenter arch"):
        build_segmenter("pspnet-x")
    with pytest.raises(ValueError, match="encoder"):
        build_segmenter("unet", "resnet_doesnotexist")
