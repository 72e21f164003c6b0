"""Summaries of the runs (:mod:`fashion_rembg.reporting.loading`) that the tables and figures show:
mean / std over seeds per (task, configuration, condition) with deltas, CIs, p-values and run health
(:func:`summarize`), the train-on-X / test-on-Y table (:func:`summarize_cross`) and the per-epoch
learning curves (:func:`learning_curve_data`).

Everything here is deterministic: rows are sorted, so the same inputs (in any order) give the same tables.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from fashion_rembg.reporting import stats as st
from fashion_rembg.reporting.health import combine_flags
from fashion_rembg.reporting.labels import (
    CONDITION_FIELDS,
    TASK_ORDER,
    condition_key,
    condition_label,
    config_key,
    config_labels_by_task,
    is_present,
    mark_standin,
    order_config_fields,
    plain,
    sortable,
    task_rank,
)
from fashion_rembg.reporting.loading import (
    CROSS_TEST_FIELDS,
    KNOWN_METRICS,
    PRIMARY_METRIC,
    Evidence,
    RunScores,
    load_experiment,
    read_history,
    read_json,
)

CI_LEVEL = 0.95
# Statistic of the per-image scores whose difference the CI and p-value are about (= the primary metric).
STATISTIC = {"classification": st.mean_statistic, "segmentation": st.miou_statistic, "instance": st.mean_statistic}
# Instance segmentation: at most this many bootstrap resamples and permutations of Δ segm AP, fewer
# than the per-image statistics get: each one re-pools every detection (stats.paired_ap_delta), about
# IoU thresholds × detections of both runs "cells" (×2 for a permutation), 40-75 ns each measured.
# AP_CELL_BUDGET (~4-6 min) lowers them for large test sets, down to AP_MIN_RESAMPLES: the demo's 60
# test images (~1.6k detections per run) get all of them in ~4 s, Fashionpedia's 1,158 with 100
# detections per image ~300 per seed.
AP_RESAMPLES = (1000, 999)
AP_MIN_RESAMPLES = (200, 199)
AP_CELL_BUDGET = 5e9


def ap_resamples(runs_a: list, runs_b: list, n_boot: int, n_perm: int) -> tuple[int, int]:
    """(bootstrap resamples, permutations) for Δ AP of these runs (ApMatches per seed) within the budget."""
    cells = sum(a.det_tp[0].shape[0] * sum(len(d) for d in (*a.det_image, *b.det_image))
                for a, b in zip(runs_a, runs_b))  # per bootstrap resample, all seeds
    affordable = int(AP_CELL_BUDGET / max(1, 3 * cells))  # one resample of each: 1 + 2 units
    return (min(n_boot, AP_RESAMPLES[0], max(AP_MIN_RESAMPLES[0], affordable)),
            min(n_perm, AP_RESAMPLES[1], max(AP_MIN_RESAMPLES[1], affordable)))


def _aligned(runs: list[RunScores], where: str) -> tuple[list[np.ndarray], np.ndarray | None]:
    """Scores of several runs in the image order of the first (they must hold the same images)."""
    ref = runs[0].ids
    position = {i: n for n, i in enumerate(ref)}
    out = []
    for r in runs:
        if len(r.ids) != len(ref) or set(r.ids) != set(position):
            raise ValueError(f"{where}: runs were tested on different images; re-run their evaluation jobs")
        order = np.argsort([position[i] for i in r.ids], kind="stable")
        out.append(r.scores[order])
    return out, runs[0].strata


def _paired_stats(task: str, a_keys: list, b_keys: list, evidence: Evidence, where: str,
                  n_boot: int, n_perm: int, seed: int) -> st.PairedDelta | None:
    runs_a = [evidence.scores.get(k) for k in a_keys]
    runs_b = [evidence.scores.get(k) for k in b_keys]
    if not runs_a or any(r is None for r in runs_a + runs_b) or task not in STATISTIC:
        return None
    if task == "instance":
        if any(r.ap is None for r in runs_a + runs_b):
            return None
        matches_a, matches_b = [r.ap for r in runs_a], [r.ap for r in runs_b]
        boot, perm = ap_resamples(matches_a, matches_b, n_boot, n_perm)
        try:
            return st.paired_ap_delta(matches_a, matches_b, n_boot=boot, n_perm=perm, seed=seed, level=CI_LEVEL)
        except ValueError as exc:  # runs on other test images: say which comparison
            raise ValueError(f"{where}: {exc}; re-run their evaluation jobs") from None
    scores, strata = _aligned(runs_a + runs_b, where)
    return st.paired_delta(scores[: len(runs_a)], scores[len(runs_a):], strata, statistic=STATISTIC[task],
                           n_boot=n_boot, n_perm=n_perm, seed=seed, level=CI_LEVEL)  # fmt: skip


def _stats(values: np.ndarray) -> tuple[float, float]:
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return math.nan, math.nan
    mean = float(np.mean(values))
    std = float(np.std(values, ddof=1)) if values.size > 1 else math.nan
    return mean, std


def summarize(runs: pd.DataFrame, condition_fields: Sequence[str] = CONDITION_FIELDS, *,
              evidence: Evidence | None = None, n_boot: int = 2000, n_perm: int = 9999,
              stats_seed: int = 0) -> pd.DataFrame:
    """Mean / sample std over seeds per (task, configuration, condition), plus deltas.

    Columns: ``task``, the configuration fields (``dataset``, ``arch``, then the
    rest alphabetically), ``config_label``, ``variant``, ``sod``, ``fill``,
    ``condition``, ``id``, ``n_seeds``, ``seeds`` (``;``-joined), ``primary_metric``,
    ``<metric>_mean`` / ``<metric>_std`` for each scalar metric, and for
    non-original conditions ``delta`` = mean(condition) − mean(original) of the
    primary metric, ``delta_std`` and ``paired``.

    When both conditions were run with exactly the same seeds the delta is paired:
    ``delta_std`` is the sample std of the per-seed differences. Otherwise
    (``paired`` False) it is sqrt(std_a² + std_b²), the std of a difference of two
    independent single-seed results, so both cases mean "spread of one delta".

    With ``evidence`` (:func:`load_evidence`) every delta also gets ``ci_low``/``ci_high`` (95 %
    paired bootstrap over test images) and ``p_value`` (paired permutation test) over the seeds
    both conditions ran (see :mod:`fashion_rembg.reporting.stats`), ``p_holm`` (Holm across the
    deltas of a task), and every row ``health`` (``ok`` or the ``;``-joined flags of its runs,
    :mod:`fashion_rembg.reporting.health`) with ``health_detail`` (which seed, why). Without it
    these are NaN and ``unchecked``.
    """
    if runs.empty:
        raise ValueError("summarize: no runs")
    for col in ("task", "variant", "seed", "id"):
        if col not in runs.columns:
            raise ValueError(f"summarize: runs lack column {col!r} (use load_runs)")
    runs = runs.copy()
    for col in ("sod", "fill"):
        if col not in runs.columns:
            runs[col] = None

    metric_cols = runs.attrs.get("metric_columns")
    if metric_cols is None:  # DataFrame not from load_runs: metrics are the float columns we know
        known = [m for t in TASK_ORDER for m in KNOWN_METRICS[t]]
        metric_cols = [m for m in known if m in runs.columns]
    cond_set = set(condition_fields) | {"sod", "fill", "variant", "id"}
    config_fields = [c for c in runs.columns if c not in cond_set and c not in metric_cols and c != "seed"]
    ordered_fields = order_config_fields(config_fields)
    runs["_config"] = [config_key(r, ordered_fields) for _, r in runs.iterrows()]
    runs["_cond"] = [condition_key(r["variant"], r["sod"], r["fill"]) for _, r in runs.iterrows()]

    # The same seed twice in one cell would be pooled silently: refuse instead.
    dup = runs.duplicated(["_config", "_cond", "seed"], keep=False)
    if dup.any():
        bad = runs.loc[dup, ["id", "seed"]].astype(str).agg(" seed ".join, axis=1)
        raise ValueError(
            "summarize: several experiments share configuration, condition and seed "
            f"({', '.join(sorted(set(bad)))}); make them differ in a configuration field"
        )

    records = []
    for (config, cond), grp in runs.groupby(["_config", "_cond"], sort=False):
        grp = grp.sort_values("seed", kind="mergesort")
        first = grp.iloc[0]
        task = str(first["task"])
        rec = {f: plain(first[f]) if is_present(first[f]) else None for f in ordered_fields}
        rec["_config"] = config
        rec["_cond"] = cond
        rec["variant"] = str(first["variant"])
        rec["sod"] = cond[1] or None
        rec["fill"] = cond[2] or None
        rec["condition"] = condition_label(rec["variant"], rec["sod"], rec["fill"])
        rec["id"] = ";".join(sorted(set(grp["id"].astype(str))))
        rec["n_seeds"] = int(len(grp))
        rec["seeds"] = ";".join(str(int(s)) for s in grp["seed"])
        rec["primary_metric"] = PRIMARY_METRIC.get(task)
        rec["_keys"] = {int(s): (task, str(i), int(s)) for s, i in zip(grp["seed"], grp["id"])}
        rec["_seed_values"] = {
            int(s): v for s, v in zip(grp["seed"], grp[rec["primary_metric"]].astype(float))
        } if rec["primary_metric"] in grp.columns else {}
        for m in metric_cols:
            rec[f"{m}_mean"], rec[f"{m}_std"] = _stats(grp[m].to_numpy(dtype=float))
        records.append(rec)

    # Deltas against the original condition of the same configuration.
    originals = {
        r["_config"]: r for r in records if r["variant"] == "original"
    }
    for rec in records:
        rec["delta"], rec["delta_std"], rec["paired"] = math.nan, math.nan, None
        base = originals.get(rec["_config"])
        if rec["variant"] == "original" or base is None or rec["primary_metric"] is None:
            continue
        m = rec["primary_metric"]
        a, b = rec["_seed_values"], base["_seed_values"]
        paired = sorted(a) == sorted(b)
        rec["delta"] = rec[f"{m}_mean"] - base[f"{m}_mean"]
        if paired:
            diffs = np.array([a[s] - b[s] for s in sorted(a)])
            rec["delta_std"] = float(np.std(diffs, ddof=1)) if diffs.size > 1 else math.nan
        else:
            rec["delta_std"] = math.sqrt(rec[f"{m}_std"] ** 2 + base[f"{m}_std"] ** 2)
        rec["paired"] = paired

    for rec in records:
        rec["ci_low"] = rec["ci_high"] = rec["p_value"] = math.nan
        rec["health"], rec["health_detail"] = "unchecked", ""
        if evidence is None:
            continue
        reasons = {s: evidence.health.get(k, []) for s, k in rec["_keys"].items()}
        rec["health"] = combine_flags(reasons.values())
        rec["health_detail"] = "; ".join(f"seed {s}: {r}" for s, rs in sorted(reasons.items()) for r in rs)
        base = originals.get(rec["_config"])
        if rec["variant"] == "original" or base is None:
            continue
        seeds = sorted(set(rec["_keys"]) & set(base["_keys"]))
        result = _paired_stats(rec["task"], [base["_keys"][s] for s in seeds], [rec["_keys"][s] for s in seeds],
                               evidence, f"{rec['id']} vs {base['id']}", n_boot, n_perm, stats_seed)  # fmt: skip
        if result is not None:
            rec["ci_low"], rec["ci_high"], rec["p_value"] = result.ci_low, result.ci_high, result.p_value

    summary = pd.DataFrame(records)
    # Holm across the comparisons of one table (one task).
    summary["p_holm"] = math.nan
    for task in summary["task"].unique():
        sel = (summary["task"] == task).to_numpy()
        summary.loc[sel, "p_holm"] = st.holm(summary.loc[sel, "p_value"].to_numpy(dtype=float))
    # Labels are computed per task so they only mention what varies there.
    summary["config_label"] = config_labels_by_task(summary, summary["_config"], ordered_fields)
    mark_standin(summary)

    # Sort: task order, then dataset/arch/other fields, then condition order.
    def sort_key(idx):
        r = summary.loc[idx]
        fields = tuple(sortable(r[f]) for f in ordered_fields[1:])
        return (task_rank(r["task"]), fields, r["_config"], r["_cond"])

    order = sorted(summary.index, key=sort_key)
    summary = summary.loc[order].reset_index(drop=True)

    stat_cols = [f"{m}_{s}" for m in metric_cols for s in ("mean", "std")]
    columns = (
        ordered_fields + ["config_label", "variant", "sod", "fill", "condition", "id",
                          "n_seeds", "seeds", "primary_metric"]
        + stat_cols + ["delta", "delta_std"]
        + ["paired", "ci_low", "ci_high", "p_value", "p_holm", "health", "health_detail"]
    )
    summary = summary[columns]
    summary.attrs["metric_columns"] = list(metric_cols)
    summary.attrs["config_fields"] = list(ordered_fields)
    return summary


def summarize_cross(cross: pd.DataFrame, evidence: Evidence | None = None) -> pd.DataFrame:
    """Mean / sample std over seeds per (task, configuration, training condition, test condition).

    Columns: ``task``, configuration fields, ``config_label``, ``variant``/``sod``/``fill`` and
    ``condition`` (trained on), ``test_variant``/``test_sod``/``test_fill`` and
    ``test_condition`` (tested on), ``in_condition``, ``n_seeds``, ``primary_metric``,
    ``<metric>_mean`` / ``<metric>_std`` and ``health`` of the trained models (``unchecked``
    without ``evidence``; see :func:`summarize`).
    """
    if cross.empty:
        raise ValueError("summarize_cross: no rows")
    metric_cols = cross.attrs.get("metric_columns") or []
    skip = set(CONDITION_FIELDS) | set(CROSS_TEST_FIELDS) | set(metric_cols) | {"seed"}
    config_fields = [c for c in cross.columns if c not in skip]
    ordered = order_config_fields(config_fields)

    work = cross.copy()
    work["_config"] = [config_key(r, ordered) for _, r in work.iterrows()]
    work["_train"] = [condition_key(r["variant"], r["sod"], r["fill"]) for _, r in work.iterrows()]
    work["_test"] = [condition_key(r["test_variant"], r["test_sod"], r["test_fill"]) for _, r in work.iterrows()]
    records = []
    for (config, train, test), grp in work.groupby(["_config", "_train", "_test"], sort=False):
        first = grp.iloc[0]
        rec = {f: plain(first[f]) if is_present(first[f]) else None for f in ordered}
        rec.update(_config=config, _train=train, _test=test)
        rec["variant"], rec["sod"], rec["fill"] = str(first["variant"]), train[1] or None, train[2] or None
        rec["condition"] = condition_label(rec["variant"], rec["sod"], rec["fill"])
        rec["test_variant"] = str(first["test_variant"])
        rec["test_sod"], rec["test_fill"] = test[1] or None, test[2] or None
        rec["test_condition"] = condition_label(rec["test_variant"], rec["test_sod"], rec["test_fill"])
        rec["in_condition"] = train == test
        rec["n_seeds"] = int(grp["seed"].nunique())
        rec["primary_metric"] = PRIMARY_METRIC.get(str(first["task"]))
        for m in metric_cols:
            rec[f"{m}_mean"], rec[f"{m}_std"] = _stats(grp[m].to_numpy(dtype=float))
        rec["health"] = (
            "unchecked"
            if evidence is None
            else combine_flags(
                evidence.health.get((str(first["task"]), str(i), int(sd)), []) for i, sd in zip(grp["id"], grp["seed"])
            )
        )
        records.append(rec)
    out = pd.DataFrame(records)
    out["config_label"] = config_labels_by_task(out, out["_config"], ordered)
    mark_standin(out)
    order = sorted(out.index, key=lambda i: (
        task_rank(out.at[i, "task"]), tuple(sortable(out.at[i, f]) for f in ordered[1:]),
        out.at[i, "_config"], out.at[i, "_train"], out.at[i, "_test"]))  # fmt: skip
    out = out.loc[order].reset_index(drop=True)
    stat_cols = [f"{m}_{s}" for m in metric_cols for s in ("mean", "std")]
    columns = (
        ordered
        + [
            "config_label",
            "variant",
            "sod",
            "fill",
            "condition",
            "test_variant",
            "test_sod",
            "test_fill",
            "test_condition",
            "in_condition",
            "n_seeds",
            "primary_metric",
        ]
        + stat_cols
        + ["health"]
    )
    out = out[columns]
    out.attrs["metric_columns"] = list(metric_cols)
    return out


# ---------------------------------------------------------------------------- learning curves


def _run_experiment(history: Path) -> dict:
    """The experiment of one history file, from the ``metrics.json`` beside it."""
    metrics = history.parent / "metrics.json"
    if not metrics.is_file():
        raise FileNotFoundError(
            f"{history}: no metrics.json beside it; the curves are grouped by the experiment recorded there "
            "(task, variant, sod, fill), so evaluate the run first"
        )
    info = load_experiment(metrics)
    info["group"] = f"{info['task']}/{info['id']}"
    return info


def learning_curve_data(history_files: Mapping[str, Path | str]) -> pd.DataFrame:
    """Per-epoch mean/std over seeds of each experiment's history.

    ``history_files`` maps a run label (e.g. ``"<experiment_id>/seed-0"``) to its ``history.csv``;
    the labels only fix the reading order. Runs are grouped per experiment by the ``metrics.json``
    next to each history file (task, variant, sod, fill, configuration).

    Columns: experiment, task, config, condition, variant, sod, fill, epoch,
    n_seeds, val_score_mean, val_score_std, train_loss_mean, train_loss_std.
    """
    if not history_files:
        raise ValueError("plot_learning_curves: no history files given")
    groups: dict[str, dict] = {}
    for label in sorted(history_files):  # sorted: independent of dict order
        path = Path(history_files[label])
        history = read_history(path, required=True)
        info = _run_experiment(path)
        g = groups.setdefault(info["group"], {"info": info, "histories": []})
        g["histories"].append(history)

    infos = pd.DataFrame([g["info"] for g in groups.values()], index=list(groups))
    infos["task"] = infos["task"].fillna("").astype(str)
    infos["condition"] = [condition_label(r["variant"], r["sod"], r["fill"]) for _, r in infos.iterrows()]
    # Configuration labels per task, from the fields that are not the condition.
    fields = order_config_fields([c for c in infos.columns if c not in (*CONDITION_FIELDS, "group", "condition")])
    keys = pd.Series([config_key(r, fields) for _, r in infos.iterrows()], index=infos.index)
    infos["config"] = config_labels_by_task(infos, keys, fields)

    frames = []
    for gname, g in groups.items():
        hist = pd.concat(g["histories"], ignore_index=True)
        stats = (
            hist.groupby("epoch", sort=True)
            .agg(
                n_seeds=("val_score", "count"),
                val_score_mean=("val_score", "mean"),
                val_score_std=("val_score", "std"),
                train_loss_mean=("train_loss", "mean"),
                train_loss_std=("train_loss", "std"),
            )
            .reset_index()
        )
        r = infos.loc[gname]
        for col in ("task", "config", "condition", "variant", "sod", "fill"):
            stats.insert(0, col, r[col] if is_present(r[col]) else None)
        stats.insert(0, "experiment", gname)
        frames.append(stats)
    data = pd.concat(frames, ignore_index=True)
    cols = [
        "experiment",
        "task",
        "config",
        "condition",
        "variant",
        "sod",
        "fill",
        "epoch",
        "n_seeds",
        "val_score_mean",
        "val_score_std",
        "train_loss_mean",
        "train_loss_std",
    ]
    data = data[cols]
    order = sorted(
        range(len(data)),
        key=lambda i: (
            task_rank(data.at[i, "task"]),
            str(data.at[i, "config"]),
            condition_key(data.at[i, "variant"], data.at[i, "sod"], data.at[i, "fill"]),
            data.at[i, "experiment"],
            float(data.at[i, "epoch"]),
        ),
    )
    return data.iloc[order].reset_index(drop=True)


def per_class_ap_deltas(metric_files: Sequence[Path | str], iou_type: str = "segm") -> pd.DataFrame:
    """Which garments gain and which lose: per-class COCO AP of every instance run (metrics.json
    ``per_class_<iou_type>_ap``), mean over seeds, Δ = condition − original of the same configuration.

    One row per (configuration, condition, class): ``task``, ``config`` (JSON), ``config_label``,
    ``condition``, ``class``, ``ap_original``, ``ap``, ``delta``, ``n_seeds``. Classes COCOeval could not score (no test
    instance: null) are left out.
    """
    rows = []
    for f in metric_files:
        document = read_json(Path(f), "metrics")
        exp = document["experiment"]
        if exp.get("task") != "instance":
            continue
        per_class = (document.get("metrics") or {}).get(f"per_class_{iou_type}_ap") or {}
        config = json.dumps({k: v for k, v in exp.items() if k not in CONDITION_FIELDS and k != "seed"},
                            sort_keys=True, default=str)  # fmt: skip
        condition = condition_label(exp["variant"], exp.get("sod"), exp.get("fill"))
        for name, ap in per_class.items():
            if is_present(ap):
                rows.append({"config": config, "config_label": f"{exp['dataset']} {exp['arch']} {exp['init']}",
                             "variant": exp["variant"], "condition": condition, "class": name, "ap": float(ap)})
    columns = ["task", "config", "config_label", "condition", "class", "ap_original", "ap", "delta", "n_seeds"]
    if not rows:
        return pd.DataFrame(columns=columns)
    runs = pd.DataFrame(rows)
    means = runs.groupby(["config", "config_label", "variant", "condition", "class"], sort=True)["ap"]
    means = means.agg(["mean", "size"])
    means = means.reset_index()
    original = means[means["variant"] == "original"].set_index(["config", "class"])["mean"]
    out = means[means["variant"] != "original"].copy()
    keys = list(zip(out["config"], out["class"]))
    out["ap_original"] = [original.get(k, math.nan) for k in keys]
    out = out.rename(columns={"mean": "ap", "size": "n_seeds"})
    out["delta"] = out["ap"] - out["ap_original"]
    out["task"] = "instance"
    out = out[out["delta"].notna()].sort_values(["config", "condition", "delta", "class"], kind="mergesort")
    return out[columns].reset_index(drop=True)
