"""Mask R-CNN builders: offline init from local files (ImageNet backbone, COCO weights), clear
messages without them, no rescaling of store-sized images, small anchors."""
import os

import pytest
import torch

from fashion_rembg.errors import ConfigError, PipelineError
from fashion_rembg.models.detectors import (
    COCO_WEIGHT_FILES,
    PREDICTOR_PREFIXES,
    anchor_sizes,
    build_instance_model,
    coco_weights_file,
    coco_weights_provenance,
    model_settings,
)
from fashion_rembg.models.weights import weights_file, write_standin_weights


def test_coco_file_names_match_torchvision():
    from torchvision.models import get_model_weights

    for arch, name in COCO_WEIGHT_FILES.items():
        assert os.path.basename(get_model_weights(arch).DEFAULT.url) == name


def test_toy_images_get_fewer_proposals_and_rois():
    toy = build_instance_model("maskrcnn_resnet18_fpn", 3, image_size=(64, 96))
    photo = build_instance_model("maskrcnn_resnet18_fpn", 3, image_size=(512, 384))
    override = build_instance_model("maskrcnn_resnet18_fpn", 3, image_size=(64, 96), box_batch_size_per_image=16)
    assert toy.roi_heads.fg_bg_sampler.batch_size_per_image == 32 and toy.rpn._post_nms_top_n["training"] == 300
    assert photo.roi_heads.fg_bg_sampler.batch_size_per_image == 512  # torchvision's default
    assert override.roi_heads.fg_bg_sampler.batch_size_per_image == 16


def test_toy_images_get_narrower_heads_and_the_settings_say_so():
    toy = build_instance_model("maskrcnn_resnet18_fpn", 3, image_size=(64, 96))
    photo = build_instance_model("maskrcnn_resnet18_fpn", 3, image_size=(512, 384))
    for model, arch, size in ((toy, "maskrcnn_resnet18_fpn", (64, 96)), (photo, "maskrcnn_resnet18_fpn", (512, 384))):
        settings = model_settings(arch, size)
        assert model.backbone.out_channels == settings["fpn_channels"]
        assert model.roi_heads.mask_roi_pool.output_size == (settings["mask_roi_size"],) * 2
        assert model.roi_heads.mask_head[-1][0].out_channels == settings["mask_head_convs"][-1]
    assert toy.backbone.out_channels == 64 and photo.backbone.out_channels == 128
    assert toy.roi_heads.mask_roi_pool.output_size == (7, 7) and photo.roi_heads.mask_roi_pool.output_size == (14, 14)
    assert "fpn_channels" not in model_settings("maskrcnn_resnet50_fpn_v2", (64, 96))  # torchvision's heads


def test_anchor_sizes_follow_the_image():
    assert anchor_sizes((64, 96)) == ((8,), (16,), (32,), (64,), (128,))
    assert anchor_sizes((800, 1333)) == ((32,), (64,), (128,), (256,), (512,))  # torchvision's default


def test_resnet34_variant_builds_on_its_backbone():
    model = build_instance_model("maskrcnn_resnet34_fpn", num_classes=3, image_size=(64, 96))
    assert len(model.backbone.body.layer3) == 6  # ResNet-34: 3-4-6-3 basic blocks
    assert isinstance(model.backbone.body.bn1, torch.nn.BatchNorm2d)  # trainable BN from scratch


def test_light_model_trains_and_predicts_at_store_size():
    torch.manual_seed(0)
    model = build_instance_model("maskrcnn_resnet18_fpn", num_classes=4, image_size=(64, 96))
    images = [torch.rand(3, 64, 96) for _ in range(2)]
    masks = torch.zeros(1, 64, 96, dtype=torch.uint8)
    masks[0, 10:40, 20:50] = 1
    targets = [{"boxes": torch.tensor([[20.0, 10.0, 50.0, 40.0]]), "labels": torch.tensor([2]), "masks": masks}] * 2
    losses = model(images, targets)
    assert {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"} <= set(losses)
    sum(losses.values()).backward()
    model.eval()
    transformed, _ = model.transform(images)
    assert transformed.image_sizes == [(64, 96)] * 2  # never rescaled
    with torch.no_grad():
        out = model(images)
    assert len(out) == 2 and out[0]["masks"].shape[-2:] == (64, 96)


def test_unknown_arch_init_and_missing_files_are_clear(tmp_path, no_network):
    with pytest.raises(ConfigError, match="unknown instance-segmentation arch"):
        build_instance_model("maskrcnn_vgg", 3)
    with pytest.raises(ConfigError, match="init"):
        build_instance_model("maskrcnn_resnet18_fpn", 3, init="imagenet21k", torch_home=tmp_path)
    with pytest.raises(ConfigError, match="no torchvision COCO weights"):
        build_instance_model("maskrcnn_resnet18_fpn", 3, init="coco", torch_home=tmp_path)
    expected = tmp_path / "hub" / "checkpoints" / "maskrcnn_resnet50_fpn_v2_coco-73cbd019.pth"
    with pytest.raises(PipelineError, match="place maskrcnn_resnet50_fpn_v2_coco-73cbd019.pth at") as err:
        build_instance_model("maskrcnn_resnet50_fpn_v2", 3, init="coco", torch_home=tmp_path)
    assert str(expected) in str(err.value)
    with pytest.raises(PipelineError, match="place resnet18-f37072fd.pth at"):
        build_instance_model("maskrcnn_resnet18_fpn", 3, init="imagenet", torch_home=tmp_path)
    assert no_network == []


def test_imagenet_backbone_loads_from_local_file(tmp_path):
    path = write_standin_weights("resnet18", weights_file(tmp_path, "resnet18"), seed=3)
    file_state = torch.load(path, weights_only=True)
    model = build_instance_model("maskrcnn_resnet18_fpn", 5, init="imagenet", torch_home=tmp_path, image_size=(64, 96))
    body = model.backbone.body.state_dict()
    assert torch.equal(body["layer1.0.conv1.weight"], file_state["layer1.0.conv1.weight"])
    assert torch.equal(body["bn1.running_var"], file_state["bn1.running_var"])
    # torchvision's pretrained recipe: stem and layer1 frozen, layers 2-4 trained.
    assert not model.backbone.body.layer1[0].conv1.weight.requires_grad
    assert model.backbone.body.layer4[0].conv1.weight.requires_grad


def test_coco_weights_load_from_a_locally_made_file(tmp_path):
    """A file under the official name, made from a freshly built torchvision model (91 COCO classes),
    loads through the same code; the class predictors are re-initialised for our classes."""
    import torchvision

    torch.manual_seed(1)
    official = torchvision.models.detection.maskrcnn_resnet50_fpn_v2(weights=None, weights_backbone=None)
    path = coco_weights_file(tmp_path, "maskrcnn_resnet50_fpn_v2")
    path.parent.mkdir(parents=True)
    torch.save(official.state_dict(), path)
    model = build_instance_model("maskrcnn_resnet50_fpn_v2", 28, init="coco", torch_home=tmp_path, image_size=(64, 96))
    ours, theirs = model.state_dict(), official.state_dict()
    assert set(ours) == set(theirs)
    for key, value in ours.items():
        if key.startswith(PREDICTOR_PREFIXES):
            assert value.shape != theirs[key].shape or not torch.equal(value, theirs[key])
        else:
            assert torch.equal(value, theirs[key]), key
    assert model.roi_heads.box_predictor.cls_score.out_features == 28
    assert model.roi_heads.mask_predictor.mask_fcn_logits.out_channels == 28
    assert coco_weights_provenance("maskrcnn_resnet50_fpn_v2", tmp_path) == {
        "arch": "maskrcnn_resnet50_fpn_v2", "file": path.name, "published": False}
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(PipelineError, match="cannot read COCO weights"):
        build_instance_model("maskrcnn_resnet50_fpn_v2", 28, init="coco", torch_home=tmp_path)
