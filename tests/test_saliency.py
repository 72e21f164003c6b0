"""Tests for fashion_rembg.saliency: sessions, masks, composites, mask quality.

All rembg sessions use a tiny u2net-contract ONNX model generated in a temp
U2NET_HOME; nothing is downloaded.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from PIL import Image

from fashion_rembg.saliency import composite as comp
from fashion_rembg.saliency.composite import FILLS, composite, write_composites
from fashion_rembg.saliency.masks import MaskPredictor, compute_masks, write_masks
from fashion_rembg.saliency.quality import mask_quality
from fashion_rembg.saliency.sessions import open_session, registry_models


def _tiny_u2net(path):
    """Torch-free u2net-contract model: sigmoid(channel mean), dynamic batch."""
    from onnx import TensorProto, helper, save

    x = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["N", 3, 320, 320])
    y = helper.make_tensor_value_info("d0", TensorProto.FLOAT, ["N", 1, 320, 320])
    z = helper.make_tensor_value_info("d1", TensorProto.FLOAT, ["N", 1, 320, 320])
    g = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["input.1"], ["m"], axes=[1], keepdims=1),
            helper.make_node("Sigmoid", ["m"], ["d0"]),
            helper.make_node("Identity", ["d0"], ["d1"]),
        ],
        "tiny_u2net",
        [x],
        [y, z],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    save(m, str(path))
    return path


@pytest.fixture
def home(tmp_path, monkeypatch):
    h = tmp_path / "u2net_home"
    h.mkdir()
    # open_session overwrites these; monkeypatch restores them after the test.
    monkeypatch.setenv("U2NET_HOME", str(h))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    _tiny_u2net(h / "tiny.onnx")
    return h



def _images(n=4, h=37, w=29, seed=0):
    """Non-uniform images (a constant model output would give an all-zero mask)."""
    rng = np.random.default_rng(seed)
    imgs = rng.integers(0, 120, size=(n, h, w, 3), dtype=np.uint8)
    imgs[:, h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] += 120
    return imgs


# ---------------------------------------------------------------- sessions


def test_custom_session_info_and_env(home, no_network):
    session, info = open_session("tiny", home, custom_model_path=home / "tiny.onnx", threads=1)
    assert info["model"] == "tiny"
    assert info["rembg_session"] == "U2netCustomSession"
    assert info["providers"] == ["CPUExecutionProvider"]
    import onnxruntime
    import rembg

    assert info["onnxruntime"] == onnxruntime.__version__
    assert info["rembg"] == rembg.__version__
    assert os.environ["U2NET_HOME"] == os.path.abspath(home)
    assert os.environ["OMP_NUM_THREADS"] == "1"
    assert no_network == []


def test_dis_contract_maps_to_dis_custom(home, no_network):
    _session, info = open_session("d", home, custom_model_path=home / "tiny.onnx", contract="dis")
    assert info["rembg_session"] == "DisCustomSession"


def test_unknown_model_lists_valid_names(home):
    with pytest.raises(ValueError) as e:
        open_session("not-a-model", home)
    msg = str(e.value)
    assert "not-a-model" in msg
    for name in ("u2net", "u2netp", "u2net_human_seg", "silueta", "isnet-general-use"):
        assert name in registry_models()
        assert name in msg


def test_unknown_contract(home):
    with pytest.raises(ValueError, match="contract"):
        open_session("x", home, custom_model_path=home / "tiny.onnx", contract="sam")


def test_missing_registry_weights_names_path_and_url(home, no_network):
    with pytest.raises(FileNotFoundError) as e:
        open_session("u2netp", home)
    msg = str(e.value)
    assert os.path.join(os.path.abspath(home), "u2netp.onnx") in msg
    assert "https://github.com/danielgatis/rembg/releases/download/v0.0.0/u2netp.onnx" in msg
    assert no_network == []  # failed before rembg/pooch could try a download


def test_custom_model_outside_home_rejected(home, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    shutil.copy(home / "tiny.onnx", outside / "tiny.onnx")
    with pytest.raises(ValueError, match="outside the model home"):
        open_session("tiny", home, custom_model_path=outside / "tiny.onnx")


def test_custom_model_missing_file(home):
    with pytest.raises(FileNotFoundError, match="nope.onnx"):
        open_session("tiny", home, custom_model_path=home / "nope.onnx")


@pytest.mark.parametrize("layout", ["flat", "models"])
def test_stock_name_with_standin_file(home, no_network, layout):
    dest = home / "u2net.onnx" if layout == "flat" else home / "models" / "u2net" / "u2net.onnx"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(home / "tiny.onnx", dest)
    session, info = open_session("u2net", home, providers=["CPUExecutionProvider"])
    assert info["rembg_session"] == "U2netSession"
    assert info["providers"] == ["CPUExecutionProvider"]
    masks = compute_masks(_images(2), session)
    assert masks.shape == (2, 37, 29) and masks.max() > masks.min()
    assert no_network == []


# ---------------------------------------------------------------- masks


def test_compute_masks_equals_rembg_remove(home):
    from rembg import remove

    session, _ = open_session("tiny", home, custom_model_path=home / "tiny.onnx")
    imgs = _images(3)
    for post in (False, True):
        masks = compute_masks(imgs, session, post_process=post)
        assert masks.dtype == np.uint8 and masks.shape == imgs.shape[:3]
        for i, img in enumerate(imgs):
            ref = remove(Image.fromarray(img), session=session, only_mask=True, post_process_mask=post)
            np.testing.assert_array_equal(masks[i], np.asarray(ref))
        if post:
            assert set(np.unique(masks)) <= {0, 255}
    # The tiny model is brighter -> more salient in the bright centre square.
    masks = compute_masks(imgs, session)
    assert masks[:, 15:22, 10:19].mean() > masks[:, :5, :5].mean() + 50


def test_compute_masks_rejects_bad_input(home):
    session, _ = open_session("tiny", home, custom_model_path=home / "tiny.onnx")
    with pytest.raises(ValueError, match="uint8"):
        compute_masks(np.zeros((1, 8, 8), np.uint8), session)
    with pytest.raises(ValueError, match="explicit rembg session"):
        compute_masks(_images(1), None)


def test_write_masks_shard_streams_and_matches(home, tmp_path):
    session, _ = open_session("tiny", home, custom_model_path=home / "tiny.onnx")
    imgs = _images(5, seed=3)
    np.save(tmp_path / "images.npy", imgs)
    out = tmp_path / "sal" / "masks.npy"
    predictor = MaskPredictor(session, "u2net_custom", batch_size=2)
    write_masks(tmp_path / "images.npy", out, predictor, start=1, stop=4)
    got = np.load(out)
    assert got.shape == (3, 37, 29)
    assert np.abs(got.astype(int) - compute_masks(imgs[1:4], session)).max() <= 1
    assert [p.name for p in out.parent.iterdir()] == ["masks.npy"]  # no tmp left
    with pytest.raises(ValueError, match="outside"):
        write_masks(tmp_path / "images.npy", out, predictor, start=4, stop=9)


# ---------------------------------------------------------------- composites


def test_fills_at_alpha_extremes():
    imgs = _images(3, seed=1)
    zero = np.zeros(imgs.shape[:3], np.uint8)
    full = np.full(imgs.shape[:3], 255, np.uint8)
    assert {"black", "white", "gray", "mean", "blur", "noise"} <= set(FILLS)
    for fill in FILLS:
        np.testing.assert_array_equal(composite(imgs, full, fill), imgs)
        bg = composite(imgs, zero, fill, seed=7)
        if fill == "black":
            assert (bg == 0).all()
        elif fill == "white":
            assert (bg == 255).all()
        elif fill == "gray":
            assert (bg == 128).all()
        elif fill == "mean":
            expect = np.rint(imgs.reshape(-1, 3).mean(0)).astype(np.uint8)
            assert (bg == expect).all()
        elif fill == "blur":
            from scipy.ndimage import gaussian_filter

            s = comp.BLUR_SIGMA_FRACTION * max(imgs.shape[1:3])
            ref = np.rint(gaussian_filter(imgs.astype(np.float32), (0, s, s, 0)))
            np.testing.assert_array_equal(bg, ref.astype(np.uint8))
            assert bg.std() < imgs.std()  # smoother than the original
        elif fill == "noise":
            np.testing.assert_array_equal(bg, composite(imgs, zero, fill, seed=7))
            assert not np.array_equal(bg, composite(imgs, zero, fill, seed=8))
            assert bg.min() < 20 and bg.max() > 235


def test_composite_half_alpha_rounds():
    img = np.array([[[[10, 101, 255]]]], np.uint8)
    mask = np.array([[[128]]], np.uint8)  # a = 128/255
    a = 128 / 255
    out = composite(img, mask, "white")
    expect = np.round(np.array([10, 101, 255]) * a + 255 * (1 - a)).astype(np.uint8)
    np.testing.assert_array_equal(out[0, 0, 0], expect)
    out = composite(img, mask, "black")
    np.testing.assert_array_equal(out[0, 0, 0], np.round(np.array([10, 101, 255]) * a).astype(np.uint8))


def test_composite_errors():
    imgs = _images(1)
    with pytest.raises(ValueError, match="black, white, gray, mean, blur, noise"):
        composite(imgs, np.zeros(imgs.shape[:3], np.uint8), "purple")
    with pytest.raises(ValueError, match="masks must be"):
        composite(imgs, np.zeros((1, 5, 5), np.uint8), "black")


@pytest.mark.parametrize("fill", ["mean", "noise", "blur"])
def test_write_composites_chunking_invariant(tmp_path, fill):
    imgs = _images(5, seed=2)
    masks = np.random.default_rng(0).integers(0, 256, imgs.shape[:3], dtype=np.uint8)
    np.save(tmp_path / "images.npy", imgs)
    np.save(tmp_path / "masks.npy", masks)
    out = tmp_path / "rembg" / "images.npy"
    write_composites(tmp_path / "images.npy", tmp_path / "masks.npy", out, fill, seed=3, chunk=2)
    np.testing.assert_array_equal(np.load(out), composite(imgs, masks, fill, seed=3))
    assert [p.name for p in out.parent.iterdir()] == ["images.npy"]


def test_write_composites_shape_mismatch(tmp_path):
    np.save(tmp_path / "images.npy", _images(2))
    np.save(tmp_path / "masks.npy", np.zeros((3, 37, 29), np.uint8))
    with pytest.raises(ValueError, match="masks.npy"):
        write_composites(tmp_path / "images.npy", tmp_path / "masks.npy", tmp_path / "o.npy", "black")


# ---------------------------------------------------------------- quality


def test_quality_hand_computed():
    truth = np.zeros((2, 2, 2), np.uint8)
    truth[0, 0, :] = 255  # image 0: top row foreground
    truth[1, :, 0] = 255  # image 1: left column foreground
    pred = np.zeros_like(truth)
    pred[0] = [[255, 255], [255, 0]]  # 3 predicted, 2 correct
    pred[1] = [[200, 0], [0, 0]]  # 1 predicted, correct
    q = mask_quality(pred, truth)
    assert q["n"] == 2
    np.testing.assert_allclose(q["per_image"]["iou"], [2 / 3, 1 / 2])
    np.testing.assert_allclose(q["per_image"]["mae"], [1 / 4, (55 + 255) / 255 / 4])
    # Image 0: threshold min(2*0.75, 1) = 1 -> 3 px, P=2/3, R=1.
    f0 = 1.3 * (2 / 3) * 1 / (0.3 * (2 / 3) + 1)
    # Image 1: threshold 2*(200/255/4) = 0.39 -> 1 px, P=1, R=1/2.
    f1 = 1.3 * 1 * 0.5 / (0.3 * 1 + 0.5)
    np.testing.assert_allclose(q["per_image"]["fbeta"], [f0, f1])
    np.testing.assert_allclose(q["mean_iou"], (2 / 3 + 1 / 2) / 2)
    np.testing.assert_allclose(q["mean_fbeta"], (f0 + f1) / 2)
    # All-foreground: IoU = foreground fraction = 1/2 for both.
    np.testing.assert_allclose(q["baseline_iou_all_foreground"], 0.5)
    # Prior: mean truth = [[1, .5], [.5, 0]] -> >=0.5 gives 3 px; IoU 2/3 each.
    np.testing.assert_allclose(q["baseline_iou_center_prior"], 2 / 3)


def test_quality_empty_masks_no_nan():
    truth = np.zeros((3, 4, 4), np.uint8)
    pred = np.zeros_like(truth)
    pred[1, 0, 0] = 255
    truth[2, 1, 1] = 255
    q = mask_quality(pred, truth)
    assert q["per_image"]["iou"] == [1.0, 0.0, 0.0]
    assert q["per_image"]["fbeta"] == [1.0, 0.0, 0.0]
    np.testing.assert_allclose(q["per_image"]["mae"], [0, 1 / 16, 1 / 16])
    assert q["baseline_iou_all_foreground"] == pytest.approx((0 + 0 + 1 / 16) / 3)
    # Prior is empty (no pixel is foreground in >= half the images).
    assert q["baseline_iou_center_prior"] == pytest.approx((1 + 1 + 0) / 3)
    for v in (q["mean_iou"], q["mean_mae"], q["mean_fbeta"]):
        assert np.isfinite(v)


def test_quality_errors():
    with pytest.raises(ValueError, match="shape"):
        mask_quality(np.zeros((1, 2, 2), np.uint8), np.zeros((1, 2, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        mask_quality(np.zeros((1, 2, 2), np.float32), np.zeros((1, 2, 2), np.uint8))
