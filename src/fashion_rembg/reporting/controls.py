"""The known-answer controls table: does the apparatus find the effect the generator put there?

For each control set (see :mod:`fashion_rembg.controls`): Δ top-1 = rembg − original of the shallow
scratch CNN, a paired bootstrap CI over test images (stratified by class, seed pairing kept) and a
paired test (:func:`fashion_rembg.reporting.stats.paired_delta`), and a verdict against what the
knobs predict. The dose–response row tests the slope of Δ against clutter over the sets whose
background carries no label (weighted least squares; each level's variance from its bootstrap CI,
normal approximation).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from .stats import paired_delta

log = logging.getLogger(__name__)

COLUMNS = ["control", "expected", "delta", "ci_low", "ci_high", "p_value", "verdict", "compared",
           "dataset", "clutter", "bg_label_correlation", "original_top1", "compared_top1",
           "rembg_delta", "rembg_ci_low", "rembg_ci_high", "n_images", "n_seeds", "detail"]  # fmt: skip
TEXT_COLUMNS = ("control", "expected", "verdict", "compared", "dataset", "detail")
LEVEL = 0.95
ALPHA = 0.05
DOSE_RESPONSE = "dose_response"  # the slope row's name in the ``control`` column


def read_controls(path: Path | str) -> pd.DataFrame:
    """controls.csv as written: names stay text (a control may be called "null" or "NA")."""
    numeric = [c for c in COLUMNS if c not in TEXT_COLUMNS]
    return pd.read_csv(path, keep_default_na=False, na_values={c: ["", "nan", "NaN"] for c in numeric},
                       dtype={c: str for c in TEXT_COLUMNS})


def dose_response_points(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The control sets of a controls table, by clutter: those whose background carries no label (the
    dose–response levels) and the others (e.g. the shortcut)."""
    sets = table[table["control"] != DOSE_RESPONSE]
    levels = sets[sets["bg_label_correlation"] == 0.0].sort_values("clutter")
    return levels, sets[sets["bg_label_correlation"] != 0.0].sort_values("clutter")


def per_image_correct(predictions_npz: Path | str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ids, labels, correct)`` of a classification run on its own test condition."""
    with np.load(predictions_npz, allow_pickle=False) as data:
        own = str(data["conditions"][0])
        logits = data[f"logits_{own}"]
        labels = data["labels"]
        return data["ids"], labels, (logits.argmax(1) == labels).astype(np.float64)


def _scores(files: Sequence[Path | str]) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    ids_ref, labels_ref, scores = None, None, []
    for path in files:
        ids, labels, correct = per_image_correct(path)
        if ids_ref is not None and not np.array_equal(ids, ids_ref):
            raise ValueError(f"{path}: test images differ from {files[0]}; controls compare the same images")
        ids_ref, labels_ref = ids, labels
        scores.append(correct)
    return scores, ids_ref, labels_ref


def verdict(expected: str, delta: float, lo: float, hi: float, p: float) -> str:
    if expected == "rembg_better":
        ok = lo > 0 and p < ALPHA
    elif expected == "original_better":
        ok = hi < 0 and p < ALPHA
    elif expected == "no_difference":
        ok = lo <= 0 <= hi
    else:
        return "level"  # a dose level is judged by the dose_response row
    return "pass" if ok else "fail"


def compare(original: Sequence[Path | str], rembg: Sequence[Path | str], *, n_boot: int = 2000, seed: int = 0):
    """Paired comparison of two lists of predictions.npz, one per seed, same seed order."""
    a, ids, labels = _scores(original)
    b, ids_b, _ = _scores(rembg)
    if not np.array_equal(ids, ids_b):
        raise ValueError(f"{rembg[0]}: test images differ from {original[0]}")
    result = paired_delta(a, b, labels, n_boot=n_boot, seed=seed, level=LEVEL)
    return result, float(np.mean([s.mean() for s in a])), float(np.mean([s.mean() for s in b]))


def dose_response(rows: pd.DataFrame, prefix: str = "") -> dict:
    """Weighted least-squares slope of Δ (columns ``<prefix>delta``, ``<prefix>ci_low/high``) on
    clutter, with a normal-approximation CI and p-value."""
    z = sps.norm.ppf(0.5 + LEVEL / 2)
    x = rows["clutter"].to_numpy(float)
    y = rows[f"{prefix}delta"].to_numpy(float)
    spread = rows[f"{prefix}ci_high"].to_numpy(float) - rows[f"{prefix}ci_low"].to_numpy(float)
    se = np.maximum(spread / (2 * z), 1e-6)
    w = 1.0 / se**2
    xm = np.sum(w * x) / np.sum(w)
    sxx = np.sum(w * (x - xm) ** 2)
    slope = float(np.sum(w * (x - xm) * (y - np.sum(w * y) / np.sum(w))) / sxx)
    slope_se = float(np.sqrt(1.0 / sxx))
    p = float(2 * sps.norm.sf(abs(slope) / slope_se))
    return {"delta": slope, "ci_low": slope - z * slope_se, "ci_high": slope + z * slope_se, "p_value": p}


def control_table(controls: dict[str, dict], predictions: dict[str, dict[str, list[str]]], *,
                  margin: float = 0.05, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per control set plus a ``dose_response`` row (slope of Δ per unit clutter).

    ``controls``: :func:`fashion_rembg.config.control_runs`; ``predictions[name][variant]``: the
    predictions.npz files of its runs, in seed order.
    """
    rows = []
    for name, spec in controls.items():
        compared = spec.get("compare", "rembg")
        with_rembg, top_a, top_b = compare(predictions[name]["original"], predictions[name]["rembg"],
                                           n_boot=n_boot, seed=seed)
        result = with_rembg
        details = [f"fill {spec['fill']}"] if spec.get("fill") else []
        if compared != "rembg":
            result, _, top_b = compare(predictions[name]["original"], predictions[name][compared],
                                       n_boot=n_boot, seed=seed)
            details.append(f"with rembg masks Δ {with_rembg.delta:+.3f} [{with_rembg.ci_low:+.3f}, "
                           f"{with_rembg.ci_high:+.3f}]: what the masks' errors cost")
        if spec["expected"] == "no_difference":
            inside = -margin <= result.ci_low and result.ci_high <= margin
            details.append(f"CI {'within' if inside else 'not within'} ±{margin:g} (equivalence margin)")
        rows.append({
            "control": name, "expected": spec["expected"], "delta": result.delta, "ci_low": result.ci_low,
            "ci_high": result.ci_high, "p_value": result.p_value,
            "verdict": verdict(spec["expected"], result.delta, result.ci_low, result.ci_high, result.p_value),
            "compared": compared, "dataset": spec["dataset"], "clutter": spec["clutter"],
            "bg_label_correlation": spec["bg_label_correlation"], "original_top1": top_a, "compared_top1": top_b,
            "rembg_delta": with_rembg.delta, "rembg_ci_low": with_rembg.ci_low, "rembg_ci_high": with_rembg.ci_high,
            "n_images": result.n_images, "n_seeds": result.n_seeds, "detail": "; ".join(details),
        })  # fmt: skip
    table = pd.DataFrame(rows, columns=COLUMNS)
    levels, _ = dose_response_points(table)
    if levels["clutter"].nunique() >= 3:
        slope = dose_response(levels, prefix="rembg_")
        ok = slope["ci_low"] > 0 and slope["p_value"] < ALPHA
        table.loc[len(table)] = {
            "control": DOSE_RESPONSE, "expected": "delta_rises_with_clutter", **slope,
            "verdict": "pass" if ok else "fail", "compared": "rembg", "dataset": ", ".join(levels["dataset"]),
            "clutter": np.nan, "bg_label_correlation": 0.0, "original_top1": np.nan, "compared_top1": np.nan,
            "rembg_delta": np.nan, "rembg_ci_low": np.nan, "rembg_ci_high": np.nan,
            "n_images": int(levels["n_images"].sum()), "n_seeds": int(levels["n_seeds"].min()),
            "detail": "slope of Δ top-1 per unit clutter (weighted least squares over "
                      f"{levels['clutter'].nunique()} levels)",
        }  # fmt: skip
    return table


def controls_markdown(table: pd.DataFrame) -> str:
    lines = [
        "# Known-answer controls",
        "",
        "Δ = top-1 on the compared images (rembg, or oracle = the true masks) − top-1 on original images, shallow "
        "CNN from scratch; 95 % CI from a paired "
        "bootstrap over test images (stratified by class, seed pairing kept); p from the paired test of "
        "`fashion_rembg.reporting.stats.paired_delta`. The dose-response row is the slope of Δ per unit clutter.",
        "",
        "| control | expected | compared | Δ [95 % CI] | p | verdict | top-1 original → compared | data | notes |",
        "|---|---|---|---|---:|---|---|---|---|",
    ]
    for r in table.itertuples():
        verdict_cell = f"**{r.verdict.upper()}**" if r.verdict == "fail" else r.verdict
        tops = "" if np.isnan(r.original_top1) else f"{r.original_top1:.3f} → {r.compared_top1:.3f}"
        knobs = "" if np.isnan(r.clutter) else f"clutter {r.clutter:g}, correlation {r.bg_label_correlation:g}"
        lines.append(
            f"| {r.control} | {r.expected} | {r.compared} | {r.delta:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}] "
            f"| {r.p_value:.3g} | {verdict_cell} | {tops} | {knobs} | {r.detail} |"
        )
    failed = table[table["verdict"] == "fail"]["control"].tolist()
    lines += [
        "",
        f"**FAILED CONTROLS: {', '.join(failed)}** — the apparatus did not find the known answer; "
        "do not trust the study's Δs on this setup."
        if failed
        else "Every control passed.",
    ]
    return "\n".join(lines) + "\n"


def write_controls(table: pd.DataFrame, csv_path: Path | str, md_path: Path | str) -> None:
    from ..atomic import atomic_file

    with atomic_file(Path(csv_path)) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    with atomic_file(Path(md_path)) as tmp:
        Path(tmp).write_text(controls_markdown(table), encoding="utf-8")
    failed = table[table["verdict"] == "fail"]["control"].tolist()
    if failed:
        log.error("FAILED CONTROLS: %s (see %s)", ", ".join(failed), md_path)
