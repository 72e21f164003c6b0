"""Statistics of the paired rembg-vs-original comparison against known cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from fashion_rembg.evaluation.metrics import miou_of_confusions, segmentation_metrics
from fashion_rembg.reporting import stats


def _simulate(rng, n_images=100, n_seeds=2, effect=0.1):
    """0/1 correctness: image i has difficulty p_i ~ U(0.1, 0.8); the original model gets it right
    with p_i, the rembg model with p_i + effect, independently per seed. True Δ = effect."""
    p = rng.uniform(0.1, 0.8, n_images)
    a = (rng.random((n_seeds, n_images)) < p).astype(float)
    b = (rng.random((n_seeds, n_images)) < p + effect).astype(float)
    strata = rng.integers(0, 5, n_images)
    return a, b, strata


def test_ci_covers_true_delta_at_about_the_nominal_rate():
    rng = np.random.default_rng(1)
    covered = 0
    for i in range(200):
        a, b, strata = _simulate(rng)
        r = stats.paired_delta(a, b, strata, n_boot=300, n_perm=19, seed=i)
        covered += r.ci_low <= 0.1 <= r.ci_high
    assert 0.90 <= covered / 200 <= 0.99, covered


def test_null_gives_calibrated_large_p_and_effect_gives_small_p():
    rng = np.random.default_rng(2)
    null_p = [stats.paired_delta(*_simulate(rng, effect=0.0), n_boot=50, n_perm=499, seed=i).p_value
              for i in range(60)]
    assert np.mean(np.array(null_p) < 0.05) <= 0.12  # about α under the null
    assert np.median(null_p) > 0.3
    a, b, strata = _simulate(rng, n_images=200, effect=0.2)
    r = stats.paired_delta(a, b, strata, seed=0)
    assert r.p_value < 0.001 and r.ci_low > 0.05
    assert r.delta == pytest.approx(b.mean() - a.mean())
    assert (r.n_images, r.n_seeds) == (200, 2)
    assert "permutation" in r.method and "Monte Carlo" in r.method


def test_identical_scores_give_zero_delta_and_p_one():
    a = np.array([[1, 0, 1, 1, 0, 1]], dtype=float)
    r = stats.paired_delta(a, a.copy(), [0, 0, 0, 1, 1, 1])
    assert (r.delta, r.ci_low, r.ci_high, r.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_single_seed_permutation_p_equals_exact_mcnemar():
    a = np.array([1, 1, 0, 0, 1, 0, 1, 1, 0, 0, 1, 0, 1, 1], dtype=bool)
    b = np.array([1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 0, 1, 1], dtype=bool)
    r = stats.paired_delta([a], [b])
    mc = stats.mcnemar_exact(a, b)
    assert (mc.a_only, mc.b_only) == (1, 5)
    assert "exact" in r.method and "Monte Carlo" not in r.method
    assert r.p_value == pytest.approx(mc.p_value, rel=1e-12)


def test_exact_permutation_matches_scipy_for_several_seeds():
    rng = np.random.default_rng(3)
    a = rng.random((3, 12)).round(2)
    b = a + rng.normal(0.1, 0.2, (3, 12)).round(2)
    r = stats.paired_delta(a, b)
    ref = sps.permutation_test((a.mean(0), b.mean(0)), lambda x, y, axis: np.mean(y - x, axis=axis),
                               permutation_type="samples", vectorized=True, n_resamples=np.inf)
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert r.delta == pytest.approx(float(np.mean(b - a)))


def test_mcnemar_matches_binomial_test_and_hand_value():
    a = [True] * 2 + [False] * 10 + [True] * 30 + [False] * 5
    b = [False] * 2 + [True] * 10 + [True] * 30 + [False] * 5
    r = stats.mcnemar_exact(a, b)
    assert (r.a_only, r.b_only) == (2, 10)
    assert r.p_value == pytest.approx(sps.binomtest(10, 12, 0.5).pvalue, rel=1e-12)
    assert r.p_value == pytest.approx(2 * (1 + 12 + 66) / 4096, rel=1e-12)  # 2·P(X ≤ 2), X ~ Bin(12, ½)
    assert stats.mcnemar_exact([1, 0], [1, 0]).p_value == 1.0
    with pytest.raises(ValueError, match="equal length"):
        stats.mcnemar_exact([1, 0], [1])


def test_holm_against_hand_computed_example():
    adjusted = stats.holm([0.01, 0.04, 0.03, 0.005, math.nan])
    # m = 4: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → kept monotone: 0.06.
    np.testing.assert_allclose(adjusted[:4], [0.03, 0.06, 0.06, 0.02])
    assert math.isnan(adjusted[4])
    np.testing.assert_allclose(stats.holm([0.01, 0.9]), [0.02, 0.9])
    assert stats.holm([0.6, 0.7]).max() == 1.0
    assert np.isnan(stats.holm([math.nan])).all()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        stats.holm([1.5])


def test_stratified_bootstrap_keeps_class_counts():
    strata = np.array(["x"] * 7 + ["y"] * 3 + ["z"] * 12)
    rng = np.random.default_rng(0)
    counts = stats.stratified_bootstrap_counts(strata, len(strata), 500, rng)
    assert counts.shape == (500, 22)
    for value, size in (("x", 7), ("y", 3), ("z", 12)):
        assert (counts[:, strata == value].sum(axis=1) == size).all()
    assert counts[:, strata == "x"].std() > 0  # really resampled
    with pytest.raises(ValueError, match="one entry per image"):
        stats.stratified_bootstrap_counts(strata[:-1], 22, 5, rng)


def test_deterministic_given_seed_and_shape_errors():
    rng = np.random.default_rng(4)
    a, b, strata = _simulate(rng, n_images=60)
    assert stats.paired_delta(a, b, strata, seed=7) == stats.paired_delta(a, b, strata, seed=7)
    assert stats.paired_delta(a, b, strata, seed=7).ci_low != stats.paired_delta(a, b, strata, seed=8).ci_low
    with pytest.raises(ValueError, match="differ"):
        stats.paired_delta(a, b[:, :-1])
    with pytest.raises(ValueError, match="non-finite"):
        stats.paired_delta([np.array([np.nan, 1.0])], [np.array([1.0, 1.0])])


def test_miou_statistic_matches_segmentation_metrics_and_per_image_iou():
    rng = np.random.default_rng(5)
    conf = rng.integers(0, 50, (8, 4, 4)).astype(float)
    conf[:, 3, :] = 0
    conf[:, :, 3] = 0  # class 3 absent everywhere: left out of the mean
    total = conf.sum(axis=0)
    ref = segmentation_metrics(total, ["bg", "a", "b", "c"])["miou"]
    assert stats.miou_statistic(total[None], np.ones(1))[0] == pytest.approx(ref, abs=1e-6)
    per_image = miou_of_confusions(conf)
    for i in range(8):
        assert per_image[i] == pytest.approx(segmentation_metrics(conf[i], ["bg", "a", "b", "c"])["miou"], abs=1e-6)


def test_segmentation_delta_is_the_pooled_miou_difference():
    rng = np.random.default_rng(6)
    a = rng.integers(0, 40, (2, 30, 3, 3)).astype(float)
    b = a.copy()
    b[:, :, np.arange(3), np.arange(3)] += 25  # rembg: more correct pixels per class and image
    r = stats.paired_delta(a, b, statistic=stats.miou_statistic, n_boot=200, n_perm=199)
    want = np.mean([stats.miou_statistic(b[k].sum(0)[None], np.ones(1))[0]
                    - stats.miou_statistic(a[k].sum(0)[None], np.ones(1))[0] for k in range(2)])
    assert r.delta == pytest.approx(want)
    assert r.ci_low > 0 and r.p_value == pytest.approx(1 / 200)
