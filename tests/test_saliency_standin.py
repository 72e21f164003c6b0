"""Stand-in SOD network: training, ONNX export (u2net contract), use via rembg."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fashion_rembg.saliency.masks import compute_masks
from fashion_rembg.saliency.quality import mask_quality
from fashion_rembg.saliency.sessions import open_session
from fashion_rembg.saliency.standin import rembg_normalize, train_standin_sod


def _ellipses(n: int, seed: int, h: int = 56, w: int = 40):
    """Bright ellipse (random size/position/colour) on dark uniform noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    imgs = np.empty((n, h, w, 3), np.uint8)
    masks = np.empty((n, h, w), np.uint8)
    for i in range(n):
        cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
        ry, rx = rng.uniform(0.15, 0.3) * h, rng.uniform(0.15, 0.3) * w
        m = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        img = rng.integers(0, 130, size=(h, w, 3))
        img[m] = rng.integers(170, 256, size=3)
        imgs[i], masks[i] = img, m * 255
    return imgs, masks


def _write_sod(root, imgs, masks):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir(parents=True)
    for i, (im, mk) in enumerate(zip(imgs, masks)):
        Image.fromarray(im).save(root / "images" / f"{i:03d}.jpg", quality=95)
        Image.fromarray(mk).save(root / "masks" / f"{i:03d}.png")


@pytest.fixture(autouse=True)
def _restore_env(monkeypatch):
    # open_session sets U2NET_HOME / OMP_NUM_THREADS; undo it after each test.
    monkeypatch.setenv("U2NET_HOME", "")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("standin")
    imgs, masks = _ellipses(40, seed=0)
    _write_sod(root / "sod", imgs, masks)
    home = root / "home"
    stats = train_standin_sod(root / "sod", home / "standin.onnx", seed=0, epochs=8, batch_size=8)
    return home, stats


def test_training_stats_and_atomic_write(trained):
    home, stats = trained
    assert stats["n_images"] == 40 and stats["epochs"] == 8
    assert 10_000 <= stats["n_params"] <= 100_000
    assert len(stats["epoch_losses"]) == 8
    assert stats["final_loss"] < stats["epoch_losses"][0]  # it learned something
    assert stats["train_iou"] > stats["train_baseline_iou_all_foreground"] + 0.2
    assert sorted(p.name for p in home.iterdir()) == ["standin.onnx"]  # no tmp file left


def test_onnx_contract_batch2(trained):
    import onnxruntime as ort

    home, _ = trained
    sess = ort.InferenceSession(str(home / "standin.onnx"), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    assert inp.shape[1:] == [3, 320, 320] and not isinstance(inp.shape[0], int)  # dynamic batch
    assert len(sess.get_outputs()) >= 2
    imgs, _ = _ellipses(2, seed=5)
    x = np.concatenate([rembg_normalize(Image.fromarray(im)) for im in imgs])
    outs = sess.run(None, {inp.name: x})
    assert outs[0].shape == (2, 1, 80, 80) and outs[0].dtype == np.float32
    assert outs[1].ndim == 4 and outs[1].shape[0] == 2
    assert 0.0 <= outs[0].min() and outs[0].max() <= 1.0
    single = sess.run(None, {inp.name: x[1:]})[0]
    np.testing.assert_allclose(outs[0][1:], single, atol=1e-5)


def test_heldout_masks_beat_baseline_via_rembg(trained):
    home, _ = trained
    session, info = open_session("standin", home, custom_model_path=home / "standin.onnx")
    assert info["rembg_session"] == "U2netCustomSession"
    imgs, truth = _ellipses(12, seed=123)  # held out: different seed
    # Training inputs mirror rembg's own preprocessing bit for bit.
    pil = Image.fromarray(imgs[0])
    np.testing.assert_array_equal(
        rembg_normalize(pil),
        next(iter(session.normalize(pil, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), (320, 320)).values())),
    )
    pred = compute_masks(imgs, session)
    q = mask_quality(pred, truth)
    assert q["mean_iou"] > q["baseline_iou_all_foreground"] + 0.2, q
    assert q["mean_iou"] > q["baseline_iou_center_prior"], q


def test_deterministic_and_input_errors(tmp_path):
    imgs, masks = _ellipses(6, seed=1, h=24, w=20)
    _write_sod(tmp_path / "sod", imgs, masks)
    a = train_standin_sod(tmp_path / "sod", tmp_path / "h" / "a.onnx", seed=3, epochs=1, batch_size=4)
    b = train_standin_sod(tmp_path / "sod", tmp_path / "h" / "b.onnx", seed=3, epochs=1, batch_size=4)
    assert a["epoch_losses"] == b["epoch_losses"]
    assert (tmp_path / "h" / "a.onnx").read_bytes() == (tmp_path / "h" / "b.onnx").read_bytes()

    (tmp_path / "sod" / "masks" / "002.png").unlink()
    with pytest.raises(FileNotFoundError, match="002.png"):
        train_standin_sod(tmp_path / "sod", tmp_path / "h" / "c.onnx", epochs=1)
    with pytest.raises(FileNotFoundError, match="images"):
        train_standin_sod(tmp_path / "empty", tmp_path / "h" / "c.onnx", epochs=1)
    assert not (tmp_path / "h" / "c.onnx").exists()
