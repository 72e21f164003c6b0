"""Architecture and encoder names the config may use, known without importing torch (the config
is checked while Snakemake builds the DAG). tests/test_hostile_inputs.py checks them against the
installed torchvision and segmentation_models_pytorch, so they cannot drift apart unnoticed."""

# shallow_cnn + torchvision.models.list_models(module=torchvision.models)
CLASSIFIER_ARCHS = (
    "alexnet", "convnext_base", "convnext_large", "convnext_small", "convnext_tiny", "densenet121",
    "densenet161", "densenet169", "densenet201", "efficientnet_b0", "efficientnet_b1", "efficientnet_b2",
    "efficientnet_b3", "efficientnet_b4", "efficientnet_b5", "efficientnet_b6", "efficientnet_b7",
    "efficientnet_v2_l", "efficientnet_v2_m", "efficientnet_v2_s", "googlenet", "inception_v3", "maxvit_t",
    "mnasnet0_5", "mnasnet0_75", "mnasnet1_0", "mnasnet1_3", "mobilenet_v2", "mobilenet_v3_large",
    "mobilenet_v3_small", "regnet_x_16gf", "regnet_x_1_6gf", "regnet_x_32gf", "regnet_x_3_2gf",
    "regnet_x_400mf", "regnet_x_800mf", "regnet_x_8gf", "regnet_y_128gf", "regnet_y_16gf", "regnet_y_1_6gf",
    "regnet_y_32gf", "regnet_y_3_2gf", "regnet_y_400mf", "regnet_y_800mf", "regnet_y_8gf", "resnet101",
    "resnet152", "resnet18", "resnet34", "resnet50", "resnext101_32x8d", "resnext101_64x4d", "resnext50_32x4d",
    "shallow_cnn", "shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0",
    "squeezenet1_0", "squeezenet1_1", "swin_b", "swin_s", "swin_t", "swin_v2_b", "swin_v2_s", "swin_v2_t",
    "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn", "vit_b_16", "vit_b_32",
    "vit_h_14", "vit_l_16", "vit_l_32", "wide_resnet101_2", "wide_resnet50_2",
)  # fmt: skip

# segmentation_models_pytorch.encoders.get_encoder_names()
SEGMENTATION_ENCODERS = (
    "densenet121", "densenet161", "densenet169", "densenet201", "dpn107", "dpn131", "dpn68", "dpn68b", "dpn92",
    "dpn98", "efficientnet-b0", "efficientnet-b1", "efficientnet-b2", "efficientnet-b3", "efficientnet-b4",
    "efficientnet-b5", "efficientnet-b6", "efficientnet-b7", "inceptionresnetv2", "inceptionv4", "mit_b0",
    "mit_b1", "mit_b2", "mit_b3", "mit_b4", "mit_b5", "mobilenet_v2", "mobileone_s0", "mobileone_s1",
    "mobileone_s2", "mobileone_s3", "mobileone_s4", "resnet101", "resnet152", "resnet18", "resnet34",
    "resnet50", "resnext101_32x16d", "resnext101_32x32d", "resnext101_32x48d", "resnext101_32x4d",
    "resnext101_32x8d", "resnext50_32x4d", "se_resnet101", "se_resnet152", "se_resnet50", "se_resnext101_32x4d",
    "se_resnext50_32x4d", "senet154", "timm-efficientnet-b0", "timm-efficientnet-b1", "timm-efficientnet-b2",
    "timm-efficientnet-b3", "timm-efficientnet-b4", "timm-efficientnet-b5", "timm-efficientnet-b6",
    "timm-efficientnet-b7", "timm-efficientnet-b8", "timm-efficientnet-l2", "timm-skresnet18",
    "timm-skresnet34", "timm-skresnext50_32x4d", "timm-tf_efficientnet_lite0", "timm-tf_efficientnet_lite1",
    "timm-tf_efficientnet_lite2", "timm-tf_efficientnet_lite3", "timm-tf_efficientnet_lite4", "vgg11",
    "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn", "xception",
)  # fmt: skip

# Mask R-CNN arch → the torchvision ResNet under its FPN (models/detectors.py builds them).
INSTANCE_BACKBONES = {
    "maskrcnn_resnet18_fpn": "resnet18",
    "maskrcnn_resnet34_fpn": "resnet34",
    "maskrcnn_resnet50_fpn_v2": "resnet50",
}
