"""Model registries: every entry builds and produces the right output shape."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from fashion_rembg.choices import CLASSIFIER_ARCHS
from fashion_rembg.models.classifiers import CLASSIFIERS, ShallowCNN, available_classifiers, build_classifier
from fashion_rembg.models.segmenters import SEGMENTERS, build_segmenter


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)


# A sample of the registry (building all ~80 torchvision models would take minutes).
SMOKE_ARCHS = ("shallow_cnn", "resnet18", "resnet50", "vgg11", "vgg11_bn", "mobilenet_v3_small",
               "mobilenet_v3_large", "efficientnet_b0")  # fmt: skip


@pytest.mark.parametrize("name", SMOKE_ARCHS)
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


def test_registry_builds_every_torchvision_classifier_and_refuses_unknown_names():
    assert available_classifiers() == sorted(CLASSIFIERS) == sorted(CLASSIFIER_ARCHS)
    assert set(CLASSIFIERS) - {"shallow_cnn"} == set(torchvision.models.list_models(module=torchvision.models))
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


# --------------------------------------------------------------------------- ImageNet init, tricks

from fashion_rembg.errors import ConfigError, PipelineError  # noqa: E402
from fashion_rembg.models import weights as weights_mod  # noqa: E402


def _fake_imagenet_file(torch_home, arch, seed=0):
    """A locally made weights file with torchvision's name and format (no download)."""
    torch.manual_seed(seed)
    model = torchvision.models.get_model(arch, weights=None, num_classes=1000)
    path = weights_mod.weights_file(torch_home, arch)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return model.state_dict(), path


def test_static_weight_table_matches_torchvision_weights_api():
    import os

    for arch in torchvision.models.list_models(module=torchvision.models):
        url = torchvision.models.get_model_weights(arch).DEFAULT.url
        assert weights_mod.weights_url(arch) == url, arch
        assert weights_mod.WEIGHT_FILES[arch] == os.path.basename(url)


def test_imagenet_init_loads_local_file_through_weights_api(tmp_path):
    state, path = _fake_imagenet_file(tmp_path, "resnet18")
    assert path == tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    model = build_classifier("resnet18", 5, init="imagenet", torch_home=tmp_path)
    own = model.state_dict()
    assert torch.equal(own["conv1.weight"], state["conv1.weight"])
    assert torch.equal(own["layer4.1.bn2.running_var"], state["layer4.1.bn2.running_var"])
    assert own["fc.weight"].shape == (5, 512)  # new head
    scratch = build_classifier("resnet18", 5)
    assert not torch.equal(scratch.state_dict()["conv1.weight"], state["conv1.weight"])
    # With a dropout wrapper the head moves (fc.1) but the body still loads.
    wrapped = build_classifier("resnet18", 5, dropout=0.5, init="imagenet", torch_home=tmp_path)
    assert isinstance(wrapped.fc, nn.Sequential) and wrapped.fc[0].p == 0.5
    assert torch.equal(wrapped.state_dict()["conv1.weight"], state["conv1.weight"])


def test_imagenet_init_picks_the_bn_twin_file_for_vgg(tmp_path):
    with pytest.raises(PipelineError, match="vgg11_bn-6002323d.pth"):
        build_classifier("vgg11", 4, batch_norm=True, init="imagenet", torch_home=tmp_path)
    with pytest.raises(PipelineError, match="vgg11-8a719046.pth"):
        build_classifier("vgg11", 4, batch_norm=False, init="imagenet", torch_home=tmp_path)
    assert weights_mod.torchvision_arch({"task": "classification", "arch": "vgg16", "batch_norm": True}) == "vgg16_bn"
    assert weights_mod.torchvision_arch({"task": "segmentation", "arch": "unet", "encoder": "resnet34"}) == "resnet34"


def test_imagenet_init_vit_at_another_input_size(tmp_path):
    # A small ViT (vit_b_16 is slow to build): interpolated position embeddings load at 64².
    torch.manual_seed(0)
    from torchvision.models.vision_transformer import VisionTransformer

    from fashion_rembg.models.classifiers import load_pretrained

    kw = dict(patch_size=16, num_layers=1, num_heads=2, hidden_dim=16, mlp_dim=32)
    source = VisionTransformer(image_size=224, num_classes=1000, **kw).state_dict()
    model = VisionTransformer(image_size=64, num_classes=3, **kw)
    load_pretrained(model, source, "vit_tiny", 3, image_size=64)
    assert model.encoder.pos_embedding.shape == (1, 17, 16)
    assert torch.equal(model.state_dict()["conv_proj.weight"], source["conv_proj.weight"])


def test_imagenet_init_missing_or_broken_file_is_a_clear_error(tmp_path):
    with pytest.raises(PipelineError) as exc:
        build_classifier("resnet18", 3, init="imagenet", torch_home=tmp_path / "th")
    msg = str(exc.value)
    assert str(tmp_path / "th" / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in msg
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in msg
    path = weights_mod.weights_file(tmp_path, "resnet18")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(PipelineError, match="cannot read ImageNet weights"):
        build_classifier("resnet18", 3, init="imagenet", torch_home=tmp_path)
    # A file of another architecture under the right name is refused, not half-loaded.
    torch.save(torchvision.models.resnet34(num_classes=1000).state_dict(), path)
    with pytest.raises(PipelineError, match="do not fit resnet18"):
        build_classifier("resnet18", 3, init="imagenet", torch_home=tmp_path)
    with pytest.raises(ConfigError, match="shallow_cnn"):
        build_classifier("shallow_cnn", 3, init="imagenet", torch_home=tmp_path)


def test_standin_weights_and_provide_weights(tmp_path):
    target = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    weights_mod.provide_weights(target, standin=True)
    model = build_classifier("resnet18", 3, init="imagenet", torch_home=tmp_path)
    assert torch.equal(model.state_dict()["conv1.weight"], torch.load(target)["conv1.weight"])
    with pytest.raises(PipelineError, match="not a torchvision ImageNet weights file"):
        weights_mod.provide_weights(tmp_path / "foo.pth", standin=True)


def test_batch_norm_toggle_and_dropout_semantics(monkeypatch):
    # ResNets always have BN: the switch does not apply; dropout goes before their head.
    assert any(isinstance(m, nn.BatchNorm2d) for m in build_classifier("resnet18", 3, batch_norm=False).modules())
    res = build_classifier("resnet18", 3, dropout=0.3).eval()
    assert isinstance(res.fc[0], nn.Dropout) and res.fc[0].p == 0.3
    assert res(torch.randn(1, 3, 32, 32)).shape == (1, 3)
    assert build_classifier("shallow_cnn", 3, dropout=0.4).dropout.p == 0.4
    # VGG (slow to build): the switch picks torchvision's *_bn twin, dropout is its own argument.
    calls = []
    monkeypatch.setattr(torchvision.models, "get_model", lambda name, **kw: calls.append((name, kw)) or nn.Identity())
    build_classifier("vgg11", 3, batch_norm=True, dropout=0.2)
    build_classifier("vgg16", 3, batch_norm=False)
    build_classifier("vgg11_bn", 3, batch_norm=False)  # named twin: used as named
    assert calls == [
        ("vgg11_bn", {"weights": None, "num_classes": 3, "dropout": 0.2}),
        ("vgg16", {"weights": None, "num_classes": 3}),
        ("vgg11_bn", {"weights": None, "num_classes": 3}),
    ]


@pytest.mark.parametrize("name", ["mobilenet_v3_large", "efficientnet_b0"])
def test_more_torchvision_classifiers_forward(name):
    model = build_classifier(name, 6, dropout=0.1).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 6)


def test_segmenter_imagenet_encoder_from_local_file(tmp_path):
    state, _ = _fake_imagenet_file(tmp_path, "resnet18")
    model = build_segmenter("unet", "resnet18", 4, init="imagenet", torch_home=tmp_path)
    assert torch.equal(model.encoder.state_dict()["layer1.0.conv1.weight"], state["layer1.0.conv1.weight"])
    with pytest.raises(ConfigError, match="resnet"):
        build_segmenter("unet", "mobilenet_v2", 4, init="imagenet", torch_home=tmp_path)


def test_fetch_weights_offline_or_wrong_file_says_what_to_place(tmp_path, monkeypatch):
    target = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    monkeypatch.setattr(weights_mod, "TORCHVISION_BASE_URL", f"file://{tmp_path}/mirror/")
    with pytest.raises(PipelineError) as exc:  # nothing at the URL (as offline)
        weights_mod.provide_weights(target, standin=False)
    assert f"place resnet18-f37072fd.pth at {target}" in str(exc.value) and not target.exists()
    (tmp_path / "mirror").mkdir()
    torch.save({"x": torch.zeros(1)}, tmp_path / "mirror" / "resnet18-f37072fd.pth")
    with pytest.raises(PipelineError, match="could not download"):  # sha256 prefix does not match
        weights_mod.provide_weights(target, standin=False)
    assert not target.exists()


def test_weights_provenance_tells_standin_from_published(tmp_path, monkeypatch):
    exp = {"task": "classification", "arch": "resnet18"}
    weights_mod.write_standin_weights("resnet18", weights_mod.weights_file(tmp_path, "resnet18"))
    assert weights_mod.weights_provenance(exp, tmp_path) == {
        "arch": "resnet18", "file": "resnet18-f37072fd.pth", "published": False}
    # A file whose sha256 starts with the prefix in its name counts as the published one.
    import hashlib

    data = b"pretend these are the published weights"
    name = f"resnet18-{hashlib.sha256(data).hexdigest()[:8]}.pth"
    monkeypatch.setitem(weights_mod.WEIGHT_FILES, "resnet18", name)
    weights_mod.weights_file(tmp_path, "resnet18").write_bytes(data)
    assert weights_mod.weights_provenance(exp, tmp_path)["published"] is True
    seg = {"task": "segmentation", "arch": "unet", "encoder": "resnet18"}
    assert weights_mod.weights_provenance(seg, tmp_path)["arch"] == "resnet18"
