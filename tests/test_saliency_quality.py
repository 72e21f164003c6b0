"""Mask-quality metrics cross-checked against independent implementations, garment recall, figure.

pysodmetrics (the SOD community's reference) cannot be installed next to rembg 2.0.86:
pysodmetrics 1.6.2 pins numpy<2.3.5 and scikit-image<0.26 while rembg needs numpy>=2.3
(we run 2.4) and scikit-image>=0.26, plus opencv and scikit-learn. The metrics are
therefore checked (1) against a reference written here straight from the published
formulas (Achanta et al. 2009 adaptive F-measure, Perazzi et al. 2012 MAE, Jaccard),
(2) against torchmetrics, and (3) against pysodmetrics itself where it is importable.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from fashion_rembg.saliency.figures import plot_extremes
from fashion_rembg.saliency.quality import extremes, garment_recall, mask_quality
from fashion_rembg.saliency.stage import write_quality

BETA2 = 0.3


def realistic(n=12, h=40, w=30, seed=0):
    """Soft predictions that overlap blob-shaped truths imperfectly (no degenerate cases)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    truth = np.zeros((n, h, w), np.uint8)
    pred = np.zeros((n, h, w), np.uint8)
    for i in range(n):
        cy, cx, r = rng.uniform(12, 28), rng.uniform(10, 20), rng.uniform(5, 11)
        truth[i] = (((yy - cy) ** 2 + (xx - cx) ** 2) <= r**2) * 255
        dy, dx = rng.normal(0, 3, 2)
        d = np.sqrt((yy - cy - dy) ** 2 + (xx - cx - dx) ** 2)
        soft = 1 / (1 + np.exp((d - r * rng.uniform(0.7, 1.3)) / rng.uniform(0.5, 3)))
        pred[i] = np.clip(soft * 255 + rng.normal(0, 20, (h, w)), 0, 255).astype(np.uint8)
    return pred, truth


# Reference written from the papers' formulas, one image at a time, plain Python sums.
def ref_iou(p, g):
    P, G = p >= 128, g >= 128
    return (P & G).sum() / (P | G).sum()


def ref_mae(p, g):
    return float(np.sum(np.abs(p / 255.0 - g / 255.0)) / p.size)


def ref_adaptive_f(p, g):
    s = p / 255.0
    ta = min(2.0 / (s.shape[0] * s.shape[1]) * s.sum(), 1.0)  # Achanta et al. 2009, eq. (4)
    binary = s >= ta
    G = g >= 128
    tp = (binary & G).sum()
    precision, recall = tp / binary.sum(), tp / G.sum()
    return (1 + BETA2) * precision * recall / (BETA2 * precision + recall)


def test_metrics_equal_formula_reference():
    pred, truth = realistic()
    q = mask_quality(pred, truth)
    for i in range(len(pred)):
        assert q["per_image"]["iou"][i] == pytest.approx(ref_iou(pred[i], truth[i]), abs=1e-12)
        assert q["per_image"]["mae"][i] == pytest.approx(ref_mae(pred[i], truth[i]), abs=1e-12)
        assert q["per_image"]["fbeta"][i] == pytest.approx(ref_adaptive_f(pred[i], truth[i]), abs=1e-12)
    assert q["mean_iou"] == pytest.approx(np.mean([ref_iou(p, g) for p, g in zip(pred, truth)]))
    assert 0.3 < q["mean_iou"] < 0.95  # the fixture is neither trivial nor hopeless


def test_metrics_equal_torchmetrics():
    torch = pytest.importorskip("torch")
    tm = pytest.importorskip("torchmetrics.classification")
    from torchmetrics.regression import MeanAbsoluteError

    pred, truth = realistic(seed=1)
    q = mask_quality(pred, truth)
    for i in range(len(pred)):
        p = torch.from_numpy(pred[i].astype(np.float64) / 255.0)
        g = torch.from_numpy((truth[i] >= 128).astype(np.int64))
        # torchmetrics binarises with `>`: 127.5/255 makes it `>= 128`.
        iou = tm.BinaryJaccardIndex(threshold=127.5 / 255.0)(p.flatten(), g.flatten())
        assert q["per_image"]["iou"][i] == pytest.approx(float(iou), abs=1e-6)
        mae = MeanAbsoluteError()(p.flatten(), torch.from_numpy(truth[i].astype(np.float64) / 255.0).flatten())
        assert q["per_image"]["mae"][i] == pytest.approx(float(mae), abs=1e-6)
        thr = min(2 * float(p.mean()), 1.0)
        binary = (p >= thr).to(torch.int64)  # adaptive threshold, then torchmetrics' F-beta on the counts
        fb = tm.BinaryFBetaScore(beta=BETA2**0.5)(binary.flatten(), g.flatten())
        assert q["per_image"]["fbeta"][i] == pytest.approx(float(fb), abs=1e-6)


def test_metrics_equal_pysodmetrics_when_installable():
    sod = pytest.importorskip("py_sod_metrics", reason="pysodmetrics conflicts with rembg's numpy/scikit-image pins")
    pred, truth = realistic(seed=2)
    q = mask_quality(pred, truth)
    fm, mae = sod.Fmeasure(beta=BETA2), sod.MAE()
    for p, g in zip(pred, truth):
        fm.step(p / 255.0, g >= 128, normalize=False)
        mae.step(p / 255.0, g >= 128, normalize=False)
    assert q["mean_mae"] == pytest.approx(mae.get_results()["mae"], abs=1e-9)
    assert q["mean_fbeta"] == pytest.approx(fm.get_results()["fm"]["adp"], abs=1e-9)


def test_garment_recall_hand_computed():
    pred = np.zeros((3, 2, 4), np.uint8)
    cls = np.zeros((3, 2, 4), np.uint8)
    cls[0, 0, :] = [1, 1, 3, 3]  # 4 garment pixels
    pred[0, 0, :3] = [255, 128, 64]  # keeps 2 of them; soft alpha 255+128+64
    pred[0, 1, 0] = 255  # keeps a non-garment pixel (skin): not penalised
    cls[1] = 5
    pred[1] = 255  # keeps everything
    pred[2, 0, 0] = 200  # image without garments
    g = garment_recall(pred, cls)
    assert g["per_image"]["garment_recall"] == [0.5, 1.0, None]
    assert g["per_image"]["garment_soft_recall"][0] == pytest.approx((255 + 128 + 64) / 255 / 4)
    assert g["per_image"]["kept_fraction"] == [3 / 8, 1.0, 1 / 8]
    assert g["n_with_garments"] == 2 and g["mean_garment_recall"] == pytest.approx(0.75)
    with pytest.raises(ValueError, match="classmaps"):
        garment_recall(pred, cls[:, :1])


def test_extremes_skip_undefined_and_break_ties_by_index():
    worst, best = extremes([0.5, None, 0.1, 0.9, 0.1, float("nan"), 0.9], 2)
    assert worst == [2, 4] and best == [3, 6]


def test_write_quality_without_truth_gives_garment_recall(tmp_path):
    pred, truth = realistic(4, seed=3)
    cls = (truth > 0).astype(np.uint8) * 2
    np.save(tmp_path / "masks.npy", pred)
    np.save(tmp_path / "truth.npy", truth)
    np.save(tmp_path / "classmaps.npy", cls)
    q = write_quality(tmp_path / "masks.npy", tmp_path / "q.json", dataset="modanet", sod="m",
                      classmaps_npy=tmp_path / "classmaps.npy")
    on_disk = json.loads((tmp_path / "q.json").read_text())
    assert "mean_iou" not in on_disk and on_disk["mean_garment_recall"] == q["mean_garment_recall"]
    assert len(on_disk["per_image"]["garment_recall"]) == 4
    both = write_quality(tmp_path / "masks.npy", tmp_path / "q2.json", dataset="modanet", sod="m",
                         truth_npy=tmp_path / "truth.npy", classmaps_npy=tmp_path / "classmaps.npy")
    # Class maps equal to the truth here: garment recall is the truth recall.
    assert both["mean_iou"] > 0.3 and both["mean_garment_recall"] > 0.3
    with pytest.raises(ValueError, match="differ in shape"):
        np.save(tmp_path / "bad.npy", truth[:2])
        write_quality(
            tmp_path / "masks.npy", tmp_path / "q3.json", dataset="d", sod="m", truth_npy=tmp_path / "bad.npy"
        )


def test_extremes_figure_is_deterministic(tmp_path):
    pred, truth = realistic(8, seed=4)
    imgs = np.stack([np.stack([truth[i]] * 3, -1) // 2 + 40 for i in range(8)]).astype(np.uint8)
    q = {"dataset": "d", "sod": "m", **mask_quality(pred, truth)}
    a = plot_extremes(imgs, pred, q, tmp_path / "a.png", k=2, truth=truth)
    b = plot_extremes(imgs, pred, q, tmp_path / "b.png", k=2, truth=truth)
    assert a.read_bytes() == b.read_bytes() and a.stat().st_size > 5000
    g = {"dataset": "d", "sod": "m", "per_image": garment_recall(pred, (truth > 0).astype(np.uint8))["per_image"]}
    plot_extremes(imgs, pred, g, tmp_path / "g.png", k=2, classmaps=(truth > 0).astype(np.uint8))
    with pytest.raises(ValueError, match="true masks or class maps"):
        plot_extremes(imgs, pred, q, tmp_path / "x.png")
