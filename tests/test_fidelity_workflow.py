"""End-to-end: fit contain + mask_input photo through the real Snakefile on the tiny demo.

The demo's portrait photos go into square stores, so contain pads columns; rembg (a stand-in
conv model under a custom name) runs on the raw photos and the masks come back fitted like the images.
"""
import json

import numpy as np
import pytest
import yaml
from PIL import Image

from fashion_rembg.datasets.photos import StorePhotos
from fashion_rembg.datasets.store import PAD_RGB, fit_image
from fashion_rembg.saliency.sessions import open_session

from test_saliency_contracts import conv_model
from workflow_helpers import ROOT, planned_jobs, snakemake

pytestmark = pytest.mark.e2e


def config_for(home, mask_input):
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["demo"].update(fs14_per_class=5, modanet_train=12, modanet_val=2, sod_train=10)
    for name in ("fashionstyle14", "modanet"):
        config["datasets"][name].update(store_size=[48, 48], fit="contain")
    config["saliency"].update(model="mine", model_home=str(home), shard_size=40, batch_size=4, mask_input=mask_input,
                              verify_checksums=False)
    config["saliency"]["custom_models"]["mine"] = {"file": "mine.onnx", "contract": "u2net"}
    return config


def test_contain_store_and_photo_masks_end_to_end(tmp_path):
    home = tmp_path / "models"
    home.mkdir()
    conv_model(home / "mine.onnx", 320, seed=2)
    targets = [f"results/saliency/{d}/mine/{f}" for d in ("fashionstyle14", "modanet")
               for f in ("quality.json", "session.json")]
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config_for(home, "photo")))
    snakemake(tmp_path, *targets)

    images = np.load(tmp_path / "results/data/fashionstyle14/images.npy")
    truth = np.load(tmp_path / "results/data/fashionstyle14/truth.npy")
    masks = np.load(tmp_path / "results/saliency/fashionstyle14/mine/masks.npy")
    assert images.shape[1:3] == truth.shape[1:] == masks.shape[1:] == (48, 48)
    # 2:3 portraits in a square store: whole columns of pad (a photo pixel may match the pad colour by chance)
    pad_columns = (images == PAD_RGB).all(-1).all(1)  # (N, W)
    pad = np.broadcast_to(pad_columns[:, None, :], images.shape[:3])
    assert pad[:, :, :6].all() and not truth[pad].any() and not masks[pad].any()
    session = json.loads((tmp_path / "results/saliency/fashionstyle14/mine/session.json").read_text())
    assert session["mask_input"] == "photo"
    quality = json.loads((tmp_path / "results/saliency/modanet/mine/quality.json").read_text())
    assert 0 <= quality["mean_iou"] <= 1

    # the stage's masks are rembg's masks of the raw photos, fitted like the images
    from rembg import remove

    rembg_session, _ = open_session("mine", home, custom_model_path=home / "mine.onnx")
    root = tmp_path / "resources/demo/FashionStyle14_v1"
    with StorePhotos("fashionstyle14", {"fashionstyle14": str(root / "train.csv")},
                     tmp_path / "results/data/fashionstyle14/manifest.tsv") as photos:
        for i in (0, len(photos) - 1):
            photo = photos.photo(i)
            assert photo.shape[0] > 48  # the decoded photo, larger than the store
            ref = np.asarray(fit_image(remove(Image.fromarray(photo), session=rembg_session, only_mask=True),
                                       (48, 48), fit="contain"))
            assert np.abs(masks[i].astype(int) - ref).max() <= 1

    # switching back to store input reruns the masks only, not the stores
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config_for(home, "store")))
    jobs = planned_jobs(snakemake(tmp_path, "-n", *targets).stdout)
    assert jobs.get("saliency_shard") and "prepare_fashionstyle14" not in jobs and "prepare_truth" not in jobs
