"""Statistics of a paired comparison: rembg vs original on the same test images, over seeds.

The design: for every seed k the original and the rembg model are trained (seed k each) and
tested on the *same* test images. Per image i and seed k there is a score ``a[k, i]`` (original)
and ``b[k, i]`` (rembg): 0/1 correctness for classification, or a per-image pixel confusion
matrix for segmentation (whose pooled sum gives the dataset mIoU, the table's metric). The effect
is Δ = mean over seeds of (metric(b_k) − metric(a_k)).

* Confidence interval: **paired, stratified percentile bootstrap over test images**. One draw
  resamples the test images with replacement within each stratum (class), so every class keeps
  its count; the *same* drawn images are used for original and rembg and for every seed, which
  keeps both pairings. The interval is the percentile interval of the bootstrap Δ values.
* p-value: **paired permutation (sign-flip) test over images**, two-sided. Under the null
  hypothesis "rembg vs original makes no difference on an image", the two conditions' scores of
  an image are exchangeable, so the test swaps them per image (jointly over seeds) and counts how
  often |Δ| is at least the observed one. Exact (all 2^m swaps of the m images whose scores
  differ) when m ≤ ``EXACT_MAX_IMAGES``, else Monte Carlo with a fixed seed, p = (1 + hits) /
  (1 + resamples). For 0/1 scores and one seed this is the exact McNemar test's permutation form.
* :func:`paired_ap_delta`: the same for Δ COCO AP, which is not a sum over images: each resample
  re-pools COCOeval's per-image matches (``evaluation.coco_resample``); its permutation null is
  "an image's detections are exchangeable between the conditions" (scores included).
* :func:`holm`: Holm–Bonferroni adjusted p-values across the comparisons of a table.
* :func:`mcnemar_exact`: McNemar's exact test of one seed (binomial test on discordant pairs).

Everything is deterministic given ``seed`` (numpy ``default_rng``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from fashion_rembg.evaluation.metrics import miou_of_confusions

__all__ = [
    "EXACT_MAX_IMAGES",
    "McNemarResult",
    "PairedDelta",
    "holm",
    "mcnemar_exact",
    "mean_statistic",
    "miou_statistic",
    "paired_ap_delta",
    "paired_delta",
    "stratified_bootstrap_counts",
]

# Up to this many informative images the permutation test enumerates all 2^m swaps (65 536).
EXACT_MAX_IMAGES = 16
_CHUNK = 1024  # resamples evaluated per matrix product (bounds memory)

# statistic(totals, counts): totals (B, *feature) = weighted sums of the per-image scores over the
# images of B resamples, counts (B,) = how many images each resample holds → (B,) metric values.
Statistic = Callable[[np.ndarray, np.ndarray], np.ndarray]


def mean_statistic(totals: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Mean per-image score (top-1 accuracy when the scores are 0/1 correctness)."""
    return totals.reshape(len(totals)) / counts


def miou_statistic(totals: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Dataset mIoU of pooled pixel confusion matrices ``totals`` (B, C, C), rows = true class:
    IoU averaged over the classes present in truth or prediction, as in
    ``evaluation.metrics.segmentation_metrics``."""
    return miou_of_confusions(totals)


@dataclass(frozen=True)
class PairedDelta:
    """Δ = b − a (averaged over seeds) with its bootstrap CI and permutation p-value."""

    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    method: str
    n_images: int
    n_seeds: int


@dataclass(frozen=True)
class McNemarResult:
    p_value: float
    a_only: int  # images only a classified correctly
    b_only: int  # images only b classified correctly


def _stack(scores: Sequence[np.ndarray] | np.ndarray, name: str) -> np.ndarray:
    arrays = [np.asarray(s, dtype=np.float64) for s in scores]
    if not arrays:
        raise ValueError(f"paired_delta: {name} holds no seeds")
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise ValueError(f"paired_delta: the seeds of {name} have different shapes {sorted(shapes)}")
    out = np.stack(arrays)
    if out.ndim < 2 or out.shape[1] == 0:
        raise ValueError(f"paired_delta: {name} must hold per-image scores (seeds × images), got {out.shape}")
    if not np.all(np.isfinite(out)):
        raise ValueError(f"paired_delta: {name} contains non-finite scores")
    return out.reshape(out.shape[0], out.shape[1], -1)


def stratified_bootstrap_counts(strata: Sequence | np.ndarray | None, n_images: int, n_boot: int,
                                rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n_images) int matrix: how often each image is drawn in each bootstrap resample.

    Images are drawn with replacement within each stratum (``None``: one stratum), so every
    resample holds exactly as many images of each stratum as the test set.
    """
    labels = np.zeros(n_images, dtype=np.int64) if strata is None else np.asarray(strata)
    if labels.shape != (n_images,):
        raise ValueError(f"strata must have one entry per image ({n_images}), got shape {labels.shape}")
    counts = np.zeros((n_boot, n_images), dtype=np.int64)
    for value in np.unique(labels):  # sorted: the draw order does not depend on input order of strata
        members = np.flatnonzero(labels == value)
        size = len(members)
        draws = rng.integers(0, size, size=(n_boot, size))
        flat = (draws + np.arange(n_boot)[:, None] * size).ravel()
        counts[:, members] = np.bincount(flat, minlength=n_boot * size).reshape(n_boot, size)
    return counts


def _deltas(a: np.ndarray, b: np.ndarray, weights: np.ndarray, statistic: Statistic,
            feature_shape: tuple) -> np.ndarray:
    """Δ per row of ``weights`` (R, N): mean over seeds of statistic(b) − statistic(a)."""
    counts = weights.sum(axis=1).astype(np.float64)
    out = np.zeros(len(weights))
    for k in range(a.shape[0]):
        ta = (weights @ a[k]).reshape(len(weights), *feature_shape)
        tb = (weights @ b[k]).reshape(len(weights), *feature_shape)
        out += statistic(tb, counts) - statistic(ta, counts)
    return out / a.shape[0]


def _swap_deltas(a, b, swaps: np.ndarray, informative: np.ndarray, statistic, feature_shape) -> np.ndarray:
    """Δ per row of ``swaps`` (R, m) in {0, 1}: 1 swaps the two conditions of that informative image."""
    n = a.shape[1]
    counts = np.full(len(swaps), float(n))
    out = np.zeros(len(swaps))
    for k in range(a.shape[0]):
        diff = a[k, informative] - b[k, informative]  # (m, F): what a swap moves from a to b
        moved = swaps @ diff
        ta = (a[k].sum(axis=0) - moved).reshape(len(swaps), *feature_shape)
        tb = (b[k].sum(axis=0) + moved).reshape(len(swaps), *feature_shape)
        out += statistic(tb, counts) - statistic(ta, counts)
    return out / a.shape[0]


def paired_delta(
    scores_a: Sequence[np.ndarray] | np.ndarray,
    scores_b: Sequence[np.ndarray] | np.ndarray,
    strata: Sequence | np.ndarray | None = None,
    *,
    statistic: Statistic = mean_statistic,
    n_boot: int = 2000,
    n_perm: int = 9999,
    seed: int = 0,
    level: float = 0.95,
) -> PairedDelta:
    """Δ = statistic(b) − statistic(a), averaged over seeds, with a paired bootstrap CI and a
    paired permutation p-value (see the module docstring for the method).

    ``scores_a[k]`` / ``scores_b[k]``: per-image scores of seed k, shape (N,) (e.g. 0/1
    correctness; default statistic = mean) or (N, *F) (e.g. per-image confusion matrices with
    :func:`miou_statistic`), the same N images in the same order for every seed and both
    conditions. ``strata`` (N,): the class of each image (bootstrap stratified by it) or None.
    """
    a, b = _stack(scores_a, "scores_a"), _stack(scores_b, "scores_b")
    if a.shape != b.shape:
        raise ValueError(f"paired_delta: scores_a {a.shape[:2]} and scores_b {b.shape[:2]} (seeds × images) differ")
    if not 0 < level < 1:
        raise ValueError(f"paired_delta: level must lie in (0, 1), got {level}")
    if n_boot < 1 or n_perm < 1:
        raise ValueError("paired_delta: n_boot and n_perm must be >= 1")
    n_seeds, n = a.shape[:2]
    feature_shape = np.shape(np.asarray(scores_a[0]))[1:]
    observed = float(_deltas(a, b, np.ones((1, n)), statistic, feature_shape)[0])

    rng = np.random.default_rng(seed)
    boot = np.concatenate([
        _deltas(a, b, stratified_bootstrap_counts(strata, n, min(_CHUNK, n_boot - start), rng).astype(np.float64),
                statistic, feature_shape)
        for start in range(0, n_boot, _CHUNK)
    ])  # fmt: skip
    boot = boot[np.isfinite(boot)]
    alpha = (1 - level) / 2
    ci_low, ci_high = (float(q) for q in np.quantile(boot, [alpha, 1 - alpha])) if boot.size else (math.nan,) * 2

    informative = np.flatnonzero(np.any(a != b, axis=(0, 2)))
    m = len(informative)
    tol = 1e-12 * max(1.0, abs(observed))
    if m == 0:
        p_value, how = 1.0, "exact"
    elif m <= EXACT_MAX_IMAGES:
        hits = 0
        for start in range(0, 2**m, _CHUNK):
            codes = np.arange(start, min(start + _CHUNK, 2**m))
            swaps = ((codes[:, None] >> np.arange(m)) & 1).astype(np.float64)
            null = _swap_deltas(a, b, swaps, informative, statistic, feature_shape)
            hits += int(np.sum(np.abs(null) >= abs(observed) - tol))
        p_value, how = hits / 2**m, "exact"
    else:
        hits = 0
        for start in range(0, n_perm, _CHUNK):
            swaps = rng.integers(0, 2, size=(min(_CHUNK, n_perm - start), m)).astype(np.float64)
            null = _swap_deltas(a, b, swaps, informative, statistic, feature_shape)
            hits += int(np.sum(np.abs(null) >= abs(observed) - tol))
        p_value, how = (1 + hits) / (1 + n_perm), f"Monte Carlo, {n_perm} resamples"
    strat = "stratified by class" if strata is not None else "unstratified"
    method = (f"paired percentile bootstrap over test images ({n_boot} resamples, {strat}, seed pairing kept); "
              f"paired permutation test over images ({how})")  # fmt: skip
    return PairedDelta(observed, ci_low, ci_high, min(1.0, p_value), method, int(n), int(n_seeds))


def paired_ap_delta(runs_a: Sequence, runs_b: Sequence, *, n_boot: int = 2000, n_perm: int = 9999, seed: int = 0,
                    level: float = 0.95) -> PairedDelta:
    """Δ COCO AP = AP(b) − AP(a), averaged over seeds, with the same paired bootstrap CI and paired
    permutation p-value as :func:`paired_delta`, for a statistic that is not a sum over images.

    ``runs_a[k]`` / ``runs_b[k]``: ``evaluation.coco_resample.ApMatches`` of seed k on the same test
    images. A bootstrap resample weights every image by its draw count (all seeds and both conditions
    alike); a permutation swaps the two conditions' detections of an image (jointly over seeds) and
    re-pools them. Always Monte Carlo: which images are "informative" is not a per-image score here.
    """
    from fashion_rembg.evaluation.coco_resample import check_same_test_set, pooled_ap

    if not runs_a or len(runs_a) != len(runs_b):
        raise ValueError(f"paired_ap_delta: need the same number (≥ 1) of seeds per condition, got "
                         f"{len(runs_a)} and {len(runs_b)}")  # fmt: skip
    if not 0 < level < 1:
        raise ValueError(f"paired_ap_delta: level must lie in (0, 1), got {level}")
    if n_boot < 1 or n_perm < 1:
        raise ValueError("paired_ap_delta: n_boot and n_perm must be >= 1")
    try:  # up front, before any resampling
        check_same_test_set([*runs_a, *runs_b])
    except ValueError as exc:
        raise ValueError(f"paired_ap_delta: {exc}") from None
    n = len(runs_a[0].image_ids)
    method = (f"paired percentile bootstrap over test images ({n_boot} resamples, unstratified, seed pairing "
              f"kept; COCO AP re-pooled from COCOeval's per-image matches); paired permutation test over images "
              f"(Monte Carlo, {n_perm} resamples)")  # fmt: skip

    def deltas(weights, dtype=np.float32):  # resamples in float32: half the time, AP to ~1e-6
        return np.mean([pooled_ap([b], [weights], weights, dtype) - pooled_ap([a], [weights], weights, dtype)
                        for a, b in zip(runs_a, runs_b)], axis=0)  # fmt: skip

    observed = float(deltas(np.ones((1, n)), np.float64)[0])  # COCOeval's AP exactly
    if not math.isfinite(observed):  # no object in the test set: nothing to compare
        return PairedDelta(observed, math.nan, math.nan, math.nan, method, int(n), len(runs_a))
    rng = np.random.default_rng(seed)
    chunk = 256  # pooled_ap blocks its own memory; this bounds the weight matrices
    boot = np.concatenate([deltas(stratified_bootstrap_counts(None, n, min(chunk, n_boot - start), rng).astype(float))
                           for start in range(0, n_boot, chunk)])  # fmt: skip
    boot = boot[np.isfinite(boot)]
    alpha = (1 - level) / 2
    ci_low, ci_high = (float(q) for q in np.quantile(boot, [alpha, 1 - alpha])) if boot.size else (math.nan,) * 2

    tol = 1e-6 * max(1.0, abs(observed))  # the nulls are float32 sums
    hits = 0
    for start in range(0, n_perm, chunk):
        swaps = rng.integers(0, 2, size=(min(chunk, n_perm - start), n)).astype(np.float64)
        kept, ones = 1.0 - swaps, np.ones_like(swaps)
        null = np.zeros(len(swaps))
        for a, b in zip(runs_a, runs_b):
            # Condition a after the swaps: a's detections of kept images, b's of swapped ones; b the rest.
            swapped_a = pooled_ap([a, b], [kept, swaps], ones, np.float32)
            swapped_b = pooled_ap([a, b], [swaps, kept], ones, np.float32)
            null += swapped_b - swapped_a
        hits += int(np.sum(np.abs(null / len(runs_a)) >= abs(observed) - tol))
    p_value = (1 + hits) / (1 + n_perm)
    return PairedDelta(observed, ci_low, ci_high, min(1.0, p_value), method, int(n), len(runs_a))


def mcnemar_exact(a_correct: Sequence[bool] | np.ndarray, b_correct: Sequence[bool] | np.ndarray) -> McNemarResult:
    """Exact McNemar test (two-sided) of two classifiers on the same images: a binomial test of
    the discordant pairs (only a right vs only b right) against p = 1/2 (``scipy.stats.binomtest``)."""
    from scipy import stats as sps  # here: scipy.stats takes ~1 s to import, the figure jobs need none of it

    a, b = np.asarray(a_correct, dtype=bool), np.asarray(b_correct, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"mcnemar_exact: need two 1-D arrays of equal length, got {a.shape} and {b.shape}")
    a_only, b_only = int(np.sum(a & ~b)), int(np.sum(b & ~a))
    if a_only + b_only == 0:
        return McNemarResult(1.0, 0, 0)
    return McNemarResult(float(sps.binomtest(b_only, a_only + b_only, 0.5).pvalue), a_only, b_only)


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (same order as given). NaNs stay NaN and do not count
    as comparisons."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(~np.isnan(p))
    if finite.size == 0:
        return out
    if np.any((p[finite] < 0) | (p[finite] > 1)):
        raise ValueError(f"holm: p-values must lie in [0, 1], got {p[finite].tolist()}")
    m = finite.size
    order = finite[np.argsort(p[finite], kind="mergesort")]
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out[order] = adjusted
    return out
