"""The batched mask stage equals rembg.remove(only_mask=True) for every model contract.

Stand-in ONNX models (a few convolutions, or U^2-Net's topology at a small width)
are placed in a temp U2NET_HOME under rembg's registry names or as custom models;
nothing is downloaded.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, save
from PIL import Image

from fashion_rembg.saliency.masks import (
    MaskPredictor,
    apply_mask_options,
    compute_masks,
    post_process_masks,
)
from fashion_rembg.saliency.registry import CONTRACTS, CUSTOM_SESSIONS, REMBG_WEIGHTS
from fashion_rembg.saliency.sessions import ProviderError, open_session


def conv_model(path, size, *, out_channels=1, fixed_batch=False, hidden_fixed_batch=False, pool=1, seed=0,
               sigmoid=True):
    """Two 3x3 convolutions (+ sigmoid), first output [N, C, size/pool, size/pool] and a second output."""
    rng = np.random.default_rng(seed)
    batch = 1 if fixed_batch else "N"
    out = size // pool
    x = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [batch, 3, size, size])
    y = helper.make_tensor_value_info("d0", TensorProto.FLOAT, [batch, out_channels, out, out])
    z = helper.make_tensor_value_info("d1", TensorProto.FLOAT, [batch, out_channels, out, out])
    w1 = helper.make_tensor("w1", TensorProto.FLOAT, [4, 3, 3, 3], rng.normal(size=108).tolist())
    w2 = helper.make_tensor(
        "w2", TensorProto.FLOAT, [out_channels, 4, 3, 3], rng.normal(size=36 * out_channels).tolist()
    )
    nodes = [
        helper.make_node("Conv", ["input.1", "w1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Tanh", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1]),
    ]
    last = "c2"
    if pool > 1:
        nodes.append(helper.make_node("AveragePool", [last], ["p"], kernel_shape=[pool, pool], strides=[pool, pool]))
        last = "p"
    inits = [w1, w2]
    if hidden_fixed_batch:  # a symbolic batch axis the graph cannot honour
        inits.append(helper.make_tensor("shape", TensorProto.INT64, [4], [1, out_channels, out, out]))
        nodes.append(helper.make_node("Reshape", [last, "shape"], ["rs"]))
        last = "rs"
    nodes.append(helper.make_node("Sigmoid" if sigmoid else "Identity", [last], ["d0"]))
    nodes.append(helper.make_node("Identity", ["d0"], ["d1"]))
    g = helper.make_graph(nodes, "standin", [x], [y, z], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    save(m, str(path))
    return path


def images(n=5, h=45, w=31, seed=0):
    rng = np.random.default_rng(seed)
    imgs = rng.integers(0, 110, size=(n, h, w, 3), dtype=np.uint8)
    imgs[:, h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] += rng.integers(60, 140, size=(n, 1, 1, 3), dtype=np.uint8)
    return imgs


@pytest.fixture
def home(tmp_path, monkeypatch, no_network):
    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("U2NET_HOME", str(h))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    yield h
    assert no_network == []


def assert_close(got, ref):
    """Within one grey level (batched convolutions may round differently), mostly equal."""
    assert got.shape == ref.shape and got.dtype == np.uint8
    diff = np.abs(got.astype(int) - ref.astype(int))
    assert diff.max() <= 1, diff.max()
    assert (diff == 0).mean() > 0.99


BATCHED_REGISTRY = sorted(name for name, c in CONTRACTS.items() if c.batched and name not in CUSTOM_SESSIONS.values())


@pytest.mark.parametrize("name", BATCHED_REGISTRY)
def test_registry_contracts_match_rembg(home, name):
    size = CONTRACTS[name].size
    conv_model(
        home / f"{name}.onnx", size, pool=4 if size > 320 else 1, seed=len(name), sigmoid=not CONTRACTS[name].sigmoid
    )  # BiRefNet exports logits
    session, info = open_session(name, home, threads=1, device="cpu")
    assert info["rembg_session"] == type(session).__name__
    imgs = images(3, seed=len(name))
    ref = compute_masks(imgs, session)
    got = MaskPredictor(session, name, batch_size=2).predict(imgs)
    assert_close(got, ref)
    assert ref.std() > 5  # a meaningful mask, not a constant


def test_contract_table_covers_rembg_registry():
    from rembg.sessions import sessions

    for name, cls in sessions.items():
        if not cls.is_local() or name == "sam":
            continue
        assert name in CONTRACTS, f"rembg session {name} has no contract entry"
    assert set(REMBG_WEIGHTS) <= set(CONTRACTS)


def test_u2net_contract_standin_real_topology(home):
    """U^2-Net's own topology (RSU blocks, ceil-mode pools) at 1/8 width, batched."""
    from fashion_rembg.saliency.u2net_arch import export_u2net_onnx

    export_u2net_onnx(home / "u2small.onnx", width=0.125, seed=1)
    session, info = open_session("u2small", home, custom_model_path=home / "u2small.onnx", contract="u2net")
    assert info["rembg_session"] == "U2netCustomSession"
    imgs = images(5, 53, 37, seed=2)
    assert MaskPredictor(session, "u2net_custom").prefetch is False  # CPU: no pipeline threads by default
    predictor = MaskPredictor(session, "u2net_custom", batch_size=4, workers=3, prefetch=True)
    assert predictor.dynamic_batch and predictor.batch_size == 4
    got = predictor.predict(imgs)
    assert_close(got, compute_masks(imgs, session))
    # The threaded pipeline (the GPU default) changes nothing but the timing.
    serial = MaskPredictor(session, "u2net_custom", batch_size=4, prefetch=False).predict(imgs)
    np.testing.assert_array_equal(got, serial)
    pp = MaskPredictor(session, "u2net_custom", batch_size=4, options={"post_process": True})
    assert_close(pp.predict(imgs[:2]), compute_masks(imgs[:2], session, post_process=True))


@pytest.fixture
def dis_session(home):
    conv_model(home / "dis.onnx", 1024, pool=8, seed=3)
    session, info = open_session("dis", home, custom_model_path=home / "dis.onnx", contract="dis")
    assert info["rembg_session"] == "DisCustomSession"
    return session


def test_dis_contract_standin_and_mask_options(dis_session):
    imgs = images(3, 40, 28, seed=4)
    ref = compute_masks(imgs, dis_session)
    assert_close(MaskPredictor(dis_session, "dis_custom", batch_size=3).predict(imgs), ref)
    # post_process_mask: binary and equal to rembg's.
    pp = MaskPredictor(dis_session, "dis_custom", options={"post_process": True}).predict(imgs)
    assert set(np.unique(pp)) <= {0, 255}
    assert_close(pp, compute_masks(imgs, dis_session, post_process=True))
    # Alpha matting: rembg's cutout alpha.
    from rembg import remove

    opts = {"alpha_matting": True, "alpha_matting_erode_size": 2}
    got = MaskPredictor(dis_session, "dis_custom", options=opts).predict(imgs)
    for i, img in enumerate(imgs):
        cut = np.asarray(
            remove(Image.fromarray(img), session=dis_session, alpha_matting=True, alpha_matting_erode_size=2)
        )
        assert np.abs(got[i].astype(int) - cut[..., 3]).max() <= 1


def test_threshold_binarises_soft_masks(dis_session):
    imgs = images(3, seed=5)
    soft = MaskPredictor(dis_session, "dis_custom").predict(imgs)
    for threshold in (1, 128, 255):
        hard = apply_mask_options(imgs, soft, {"threshold": threshold})
        np.testing.assert_array_equal(hard, np.where(soft >= threshold, 255, 0))
        assert set(np.unique(hard)) <= {0, 255}
    # Through the predictor, the threshold is the last option applied.
    got = MaskPredictor(dis_session, "dis_custom", options={"threshold": 128}).predict(imgs)
    np.testing.assert_array_equal(got, np.where(soft >= 128, 255, 0))


def test_post_process_vectorised_equals_rembg():
    from rembg.bg import post_process

    masks = np.random.default_rng(0).integers(0, 256, (4, 23, 17), dtype=np.uint8)
    masks[1] = 0
    masks[2, 5:15, 4:12] = 255
    got = post_process_masks(masks)
    for i in range(len(masks)):
        np.testing.assert_array_equal(got[i], post_process(masks[i]))
    # Options compose in rembg's order: post-process first, then the threshold.
    both = apply_mask_options(np.zeros((4, 23, 17, 3), np.uint8), masks, {"post_process": True, "threshold": 200})
    np.testing.assert_array_equal(both, got)


def test_constant_output_gives_zero_mask_like_rembg(home):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 320, 320])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1, 320, 320])
    g = helper.make_graph(
        [helper.make_node("ReduceMean", ["x"], ["m"], axes=[1], keepdims=1), helper.make_node("Sigmoid", ["m"], ["y"])],
        "pointwise",
        [x],
        [y],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    save(m, str(home / "c.onnx"))
    session, _ = open_session("c", home, custom_model_path=home / "c.onnx")
    flat = np.full((2, 20, 20, 3), 77, np.uint8)  # a spatially constant map -> rembg's 0/0
    with pytest.warns(RuntimeWarning):
        ref = compute_masks(flat, session)
    got = MaskPredictor(session, "u2net_custom", batch_size=2).predict(flat)
    np.testing.assert_array_equal(got, ref)


def test_fixed_batch_models_run_one_by_one(home):
    conv_model(home / "fixed.onnx", 320, fixed_batch=True, seed=7)
    session, _ = open_session("fixed", home, custom_model_path=home / "fixed.onnx")
    predictor = MaskPredictor(session, "u2net_custom", batch_size=8)
    assert not predictor.dynamic_batch and predictor.batch_size == 1
    imgs = images(3, seed=7)
    np.testing.assert_array_equal(predictor.predict(imgs), compute_masks(imgs, session))


def test_hidden_fixed_batch_falls_back_and_says_so(home):
    conv_model(home / "hidden.onnx", 320, hidden_fixed_batch=True, seed=8)
    session, _ = open_session("hidden", home, custom_model_path=home / "hidden.onnx")
    predictor = MaskPredictor(session, "u2net_custom", batch_size=4)
    assert predictor.dynamic_batch
    imgs = images(5, seed=8)
    np.testing.assert_array_equal(predictor.predict(imgs), compute_masks(imgs, session))
    assert predictor.describe()["batched_fallback"]


def test_cloth_seg_uses_rembg_predict_with_category(home):
    conv_model(home / "u2net_cloth_seg.onnx", 768, out_channels=4, pool=8, seed=9)
    session, _ = open_session("u2net_cloth_seg", home, device="cpu")
    imgs = images(2, seed=9)
    got = MaskPredictor(session, "u2net_cloth_seg", options={"cloth_category": "full"}).predict(imgs)
    ref = compute_masks(imgs, session, cloth_category="full")
    np.testing.assert_array_equal(got, ref)


def test_provider_fallback_is_reported(home):
    import onnxruntime as ort

    conv_model(home / "p.onnx", 320, seed=10)
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu present: CUDA may really run here")
    _, info = open_session(
        "p", home, custom_model_path=home / "p.onnx", providers=["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    assert info["providers_requested"][0] == "CUDAExecutionProvider"
    assert info["provider"] == "CPUExecutionProvider" and info["fallback"] is True
    _, info = open_session("p", home, custom_model_path=home / "p.onnx", device="auto")
    assert info["provider"] == "CPUExecutionProvider" and info["fallback"] is False
    with pytest.raises(ProviderError, match="saliency.device is cuda.*CPUExecutionProvider"):
        open_session("p", home, custom_model_path=home / "p.onnx", device="cuda")
