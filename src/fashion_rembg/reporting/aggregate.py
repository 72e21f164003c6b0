"""Aggregate run outputs (``metrics.json`` per experiment × seed) into tables.

Terminology used throughout:

* **run** – one ``metrics.json`` (one experiment, one seed).
* **configuration** – the experiment fields other than ``id``, ``variant``,
  ``sod`` and ``fill``: what stays fixed when the original images are compared
  with their background-removed counterparts (task, dataset, arch, hyper-parameters).
* **condition** – ``variant`` plus, for rembg, the saliency model ``sod`` and the
  background ``fill`` (e.g. ``rembg (u2net, white)``).

Everything here is deterministic: rows are sorted and floats are written with a
fixed format, so the same inputs (in any order) give byte-identical files.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fashion_rembg.reporting import stats as st
from fashion_rembg.reporting.health import HealthThresholds, assess_run, combine_flags

log = logging.getLogger(__name__)

# Primary metric per task: the one the study compares between variants.
PRIMARY_METRIC = {"classification": "top1", "segmentation": "miou"}
# Known scalar metrics, in display order; other scalar metrics follow alphabetically.
KNOWN_METRICS = {
    "classification": ["top1", "top5", "macro_f1"],
    "segmentation": ["miou", "pixel_accuracy"],
}
METRIC_TITLES = {
    "top1": "top-1",
    "top5": "top-5",
    "macro_f1": "macro F1",
    "miou": "mIoU",
    "pixel_accuracy": "pixel acc.",
    "best_epoch": "best epoch",
    "epochs_run": "epochs run",
}
# Decimals in the Markdown tables (metrics are fractions in [0, 1]).
METRIC_DIGITS = {"best_epoch": 1, "epochs_run": 1}
TASK_ORDER = ["classification", "segmentation"]
VARIANT_ORDER = ["original", "rembg", "oracle"]
# Experiment fields that describe the condition rather than the configuration.
CONDITION_FIELDS = ("id", "variant", "sod", "fill")
REQUIRED_EXPERIMENT_KEYS = ("id", "task", "dataset", "arch", "variant")
# Quality JSON keys: required ones first, then optional baselines.
QUALITY_REQUIRED = ("n", "mean_iou", "mean_mae", "mean_fbeta")
QUALITY_OPTIONAL = ("baseline_iou_all_foreground", "baseline_iou_center_prior")

_FLOAT_FORMAT = "%.10g"  # enough digits for metrics, avoids 0.6100000000000001 noise
# The demo writes seeded random weights in torchvision's format instead of ImageNet's.
STANDIN_INIT = "imagenet (stand-in)"
CI_LEVEL = 0.95
# Statistic of the per-image scores whose difference the CI and p-value are about (= the primary metric).
STATISTIC = {"classification": st.mean_statistic, "segmentation": st.miou_statistic}
STATS_METHOD = (
    "Δ: rembg − original of the primary metric, averaged over the seeds both ran. "
    "95 % CI: paired percentile bootstrap over test images (2000 resamples; stratified by class for "
    "classification; the same resampled images for both conditions and every seed). "
    "p: two-sided paired permutation test over test images (the two conditions' scores of an image "
    "swapped jointly over seeds; exact when at most 16 images differ, else 9999 Monte Carlo resamples; "
    "with one seed and 0/1 scores this is the exact McNemar test). "
    "p (Holm): Holm–Bonferroni adjusted across the Δ of the table. Segmentation resamples per-image "
    "pixel confusion matrices, so the CI is that of the dataset mIoU."
)


# --------------------------------------------------------------------------- loading


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _cell(value):
    """Make an experiment value hashable/tabular: lists and dicts become canonical JSON."""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return value


def _read_json(path: Path, what: str) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(
            f"{path}: malformed {what} JSON ({exc}); re-run the step that wrote it"
        ) from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: {what} JSON must be an object, got {type(data).__name__}")
    return data


def _parse_run(path: Path) -> tuple[dict, set[str]]:
    """Row of one run plus the names of its metric columns."""
    data = _read_json(path, "metrics")
    missing = [k for k in ("experiment", "seed", "metrics") if k not in data]
    if missing:
        raise ValueError(f"{path}: metrics.json lacks key(s) {missing} (see docs/CONTRACTS.md)")
    exp, metrics, seed = data["experiment"], data["metrics"], data["seed"]
    if not isinstance(exp, dict) or not isinstance(metrics, dict):
        raise ValueError(f"{path}: 'experiment' and 'metrics' must be JSON objects")
    missing = [k for k in REQUIRED_EXPERIMENT_KEYS if exp.get(k) in (None, "")]
    if missing:
        raise ValueError(f"{path}: experiment lacks key(s) {missing} (see docs/CONTRACTS.md)")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"{path}: 'seed' must be an integer, got {seed!r}")
    task = exp["task"]
    if task not in PRIMARY_METRIC:
        raise ValueError(f"{path}: unknown task {task!r}; expected one of {sorted(PRIMARY_METRIC)}")
    primary = PRIMARY_METRIC[task]
    if primary not in metrics:
        raise ValueError(f"{path}: metrics lack the primary metric {primary!r} for task {task!r}")

    row = {}
    for key, value in exp.items():
        if key == "seed":  # the top-level seed is authoritative
            continue
        row[key] = _cell(value)
    # Normalise "no saliency" to None so original runs group together.
    for key in ("sod", "fill"):
        if row.get(key) in ("", None) or (isinstance(row.get(key), float) and math.isnan(row[key])):
            row[key] = None
    # Demo stand-in weights are not ImageNet's: say so wherever the init is shown.
    pretrained = data.get("pretrained")
    if row.get("init") == "imagenet" and isinstance(pretrained, dict) and pretrained.get("published") is False:
        row["init"] = STANDIN_INIT
    row["seed"] = seed
    metric_names = set()
    for key, value in metrics.items():
        if key in KNOWN_METRICS[task] and not _is_number(value):
            raise ValueError(f"{path}: metric {key!r} must be a number, got {value!r}")
        if _is_number(value):  # lists/dicts (confusion matrix, per-class) are not aggregated
            if key in row:
                raise ValueError(f"{path}: metric {key!r} clashes with an experiment field")
            row[key] = float(value)
            metric_names.add(key)
    return row, metric_names


def _metric_columns(present: set[str]) -> list[str]:
    known = [m for t in TASK_ORDER for m in KNOWN_METRICS[t]]
    return [m for m in known if m in present] + sorted(m for m in present if m not in known)


def load_runs(metric_files: Sequence[Path | str]) -> pd.DataFrame:
    """One row per run: experiment fields, ``seed`` and scalar metrics.

    Non-scalar metrics (confusion matrix, per-class lists) are dropped; list/dict
    experiment values are stored as canonical JSON strings so they can be grouped.
    Rows are sorted by (task, id, seed) so the result does not depend on file order.
    """
    if not metric_files:
        raise ValueError("load_runs: no metrics.json files given")
    rows, metric_names, exp_names, origin = [], set(), set(), {}
    for f in metric_files:
        path = Path(f)
        row, names = _parse_run(path)
        key = (row["task"], row["id"], row["seed"])
        if key in origin:
            raise ValueError(
                f"duplicate run {key[1]!r} seed {key[2]}: {origin[key]} and {path}"
            )
        origin[key] = path
        rows.append(row)
        metric_names |= names
        exp_names |= set(row) - names - {"seed"}
    df = pd.DataFrame(rows)
    metric_cols = _metric_columns(metric_names)
    clash = sorted(metric_names & exp_names)
    if clash:  # a metric name in one file is an experiment field in another
        raise ValueError(f"load_runs: {clash} used both as metric and as experiment field")
    exp_cols = [c for c in REQUIRED_EXPERIMENT_KEYS] + ["sod", "fill"]
    exp_cols += sorted(c for c in df.columns if c not in exp_cols and c not in metric_cols and c != "seed")
    for c in ("sod", "fill"):
        if c not in df.columns:
            df[c] = None
    df = df[exp_cols + ["seed"] + metric_cols]
    df = df.sort_values(["task", "id", "seed"], kind="mergesort").reset_index(drop=True)
    df.attrs["metric_columns"] = metric_cols
    return df


# ------------------------------------------------------------------------- per-image evidence


@dataclass
class RunScores:
    """Per-test-image scores of one run on its own condition (predictions.npz)."""

    ids: np.ndarray  # (N,) test image ids
    scores: np.ndarray  # (N,) 0/1 correctness, or (N, C, C) per-image pixel confusion matrices
    strata: np.ndarray | None  # (N,) true class (classification), the bootstrap strata
    n_predicted_classes: int


@dataclass
class Evidence:
    """What the tables need beyond metrics.json, keyed by run (task, id, seed)."""

    scores: dict = field(default_factory=dict)  # → RunScores
    health: dict = field(default_factory=dict)  # → list of reasons (empty: healthy)

    def flagged(self) -> list[tuple[tuple, list[str]]]:
        return sorted((k, v) for k, v in self.health.items() if v)


def load_run_scores(predictions: Path | str, task: str) -> RunScores | None:
    """The own condition's per-image scores from ``predictions.npz`` (CONTRACTS.md); None (with a
    warning) when the file predates per-image scores."""
    path = Path(predictions)
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise FileNotFoundError(f"predictions file not found: {path} (run the evaluation job)") from None
    except (ValueError, OSError) as exc:
        raise ValueError(f"{path}: unreadable predictions.npz ({exc}); re-run the evaluation job") from exc
    if "ids" not in data or "conditions" not in data or not len(data["conditions"]):
        raise ValueError(f"{path}: predictions.npz lacks 'ids'/'conditions' (see docs/CONTRACTS.md)")
    key = str(data["conditions"][0])
    ids = data["ids"].astype(str)
    if task == "classification":
        if f"logits_{key}" not in data or "labels" not in data:
            raise ValueError(f"{path}: predictions.npz lacks 'labels' or 'logits_{key}' (see docs/CONTRACTS.md)")
        predicted, labels = data[f"logits_{key}"].argmax(axis=1), data["labels"].astype(np.int64)
        return RunScores(ids, (predicted == labels).astype(np.float64), labels, int(np.unique(predicted).size))
    if f"confusion_{key}" not in data:
        log.warning("%s: no per-image confusion matrices (written by an older evaluation job): no CI or p-value "
                    "for this run; re-run its evaluation job to get them", path)  # fmt: skip
        return None
    confusions = data[f"confusion_{key}"].astype(np.float64)
    predicted = int(np.count_nonzero(confusions.sum(axis=(0, 1))))
    return RunScores(ids, confusions, None, predicted)


def _read_history(path: Path) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: unreadable history.csv ({exc}); re-run the training job") from exc


def load_evidence(metric_files: Sequence[Path | str], thresholds: HealthThresholds = HealthThresholds()) -> Evidence:
    """Per-image scores and health of every run, from the ``predictions.npz`` and ``history.csv``
    next to each ``metrics.json`` (results/runs/<task>/<id>/seed-<n>/). A missing sibling leaves
    that part unchecked."""
    evidence = Evidence()
    for f in metric_files:
        path = Path(f)
        row, _ = _parse_run(path)
        task, key = str(row["task"]), (str(row["task"]), str(row["id"]), int(row["seed"]))
        document = _read_json(path, "metrics")
        n_classes = len(document.get("classes") or []) or None
        train_score = (document.get("metrics") or {}).get("train_score")
        scores = None
        if (path.parent / "predictions.npz").is_file():
            scores = load_run_scores(path.parent / "predictions.npz", task)
        if scores is not None:
            evidence.scores[key] = scores
        evidence.health[key] = assess_run(task, _read_history(path.parent / "history.csv"), n_classes,
                                          scores.n_predicted_classes if scores else None, thresholds,
                                          train_score=train_score)  # fmt: skip
    return evidence


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
    scores, strata = _aligned(runs_a + runs_b, where)
    return st.paired_delta(scores[: len(runs_a)], scores[len(runs_a):], strata, statistic=STATISTIC[task],
                           n_boot=n_boot, n_perm=n_perm, seed=seed, level=CI_LEVEL)  # fmt: skip


# ------------------------------------------------------------------------ summarising


def _present(value) -> bool:
    if value is None:
        return False
    if isinstance(value, float) and math.isnan(value):
        return False
    try:
        return not bool(pd.isna(value))
    except (TypeError, ValueError):
        return True


def _plain(value):
    """numpy scalars → Python scalars so json.dumps is stable."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def _variant_rank(variant: str) -> tuple[int, str]:
    return (VARIANT_ORDER.index(variant) if variant in VARIANT_ORDER else len(VARIANT_ORDER), variant)


def _task_rank(task: str) -> tuple[int, str]:
    return (TASK_ORDER.index(task) if task in TASK_ORDER else len(TASK_ORDER), task)


def condition_label(variant: str, sod=None, fill=None) -> str:
    """Human label of a condition, e.g. ``rembg (u2net, white)``."""
    extra = [str(v) for v in (sod, fill) if _present(v) and str(v) != ""]
    return f"{variant} ({', '.join(extra)})" if extra else str(variant)


def _fmt_value(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def config_labels(configs: pd.DataFrame, fields: Sequence[str]) -> list[str]:
    """Short labels for configurations: the arch plus what sets it apart.

    ``configs`` holds one row per configuration. The dataset is prefixed when
    there are several; of the other varying fields, those whose value differs
    from the most common one (first seen wins a tie) are appended as
    ``key=value``. Distinct configurations always get distinct labels.
    """
    def text(value) -> str | None:  # None: the field does not apply to this configuration
        return str(_fmt_value(_plain(value))) if _present(value) else None

    varying = [f for f in fields if f in configs.columns and configs[f].map(text).nunique(dropna=False) > 1]
    usual = {}
    for f in varying:
        values = [v for v in configs[f].map(text) if v is not None]
        usual[f] = max(dict.fromkeys(values), key=values.count) if values else None  # ties: first seen

    def label(row, only_unusual: bool) -> str:
        out = str(row.get("arch", ""))
        if "dataset" in varying:
            out = f"{row['dataset']}: {out}"
        extras = [f"{f}={text(row[f])}" for f in varying if f not in ("arch", "dataset", "task")
                  and text(row[f]) is not None and not (only_unusual and text(row[f]) == usual[f])]  # fmt: skip
        return out + (f" ({', '.join(extras)})" if extras else "")

    labels = [label(row, True) for _, row in configs.iterrows()]
    # A field missing here and usual there could merge two labels: spell those out in full.
    clashes = {lab for lab in labels if labels.count(lab) > 1}
    return [label(row, False) if lab in clashes else lab for lab, (_, row) in zip(labels, configs.iterrows())]


def _mark_standin(table: pd.DataFrame) -> None:
    """Stand-in ImageNet weights are named in every label, even where they are the usual init."""
    if "init" not in table:
        return
    sel = (table["init"] == STANDIN_INIT) & ~table["config_label"].astype(str).str.contains(STANDIN_INIT, regex=False)
    table.loc[sel, "config_label"] = table.loc[sel, "config_label"].astype(str) + f" · {STANDIN_INIT}"


def _config_key(row, fields: Sequence[str]) -> str:
    """Canonical string of a row's configuration (missing fields left out)."""
    items = {f: _plain(row[f]) for f in fields if f in row and _present(row[f])}
    return json.dumps(items, sort_keys=True, default=str)


def _sortable(value) -> tuple:
    """Sort key mixing numbers (numerically), strings and missing values (last)."""
    value = _plain(value)
    if not _present(value):
        return (2, 0.0, "")
    if _is_number(value):
        return (0, float(value), "")
    return (1, 0.0, str(value))


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
    ordered_fields = ["task"] + [f for f in ("dataset", "arch") if f in config_fields]
    ordered_fields += sorted(f for f in config_fields if f not in ordered_fields)

    def cond_key(row) -> tuple:
        return (
            _variant_rank(str(row["variant"])),
            str(row["sod"]) if _present(row["sod"]) else "",
            str(row["fill"]) if _present(row["fill"]) else "",
        )

    runs["_config"] = [_config_key(r, ordered_fields) for _, r in runs.iterrows()]
    runs["_cond"] = [cond_key(r) for _, r in runs.iterrows()]

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
        rec = {f: _plain(first[f]) if _present(first[f]) else None for f in ordered_fields}
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
    summary["config_label"] = ""
    for task in summary["task"].unique():
        sel = summary["task"] == task
        configs = summary.loc[sel].drop_duplicates("_config")
        mapping = dict(zip(configs["_config"], config_labels(configs, ordered_fields)))
        summary.loc[sel, "config_label"] = summary.loc[sel, "_config"].map(mapping)
    _mark_standin(summary)

    # Sort: task order, then dataset/arch/other fields, then condition order.
    def sort_key(idx):
        r = summary.loc[idx]
        fields = tuple(_sortable(r[f]) for f in ordered_fields[1:])
        return (_task_rank(r["task"]), fields, r["_config"], r["_cond"])

    order = sorted(summary.index, key=sort_key)
    summary = summary.loc[order].reset_index(drop=True)

    stat_cols = [f"{m}_{s}" for m in metric_cols for s in ("mean", "std")]
    columns = (
        ordered_fields + ["config_label", "variant", "sod", "fill", "condition", "id",
                          "n_seeds", "seeds", "primary_metric"]
        + stat_cols + ["delta", "delta_std", "paired", "ci_low", "ci_high", "p_value", "p_holm", "health",
                       "health_detail"]
    )
    summary = summary[columns]
    summary.attrs["metric_columns"] = list(metric_cols)
    summary.attrs["config_fields"] = list(ordered_fields)
    return summary


# ----------------------------------------------------------------------------- quality


def load_quality(files: Sequence[Path | str], keys: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """Saliency-mask quality JSONs → one row per (dataset, sod), sorted.

    ``keys[i]`` is the (dataset, sod) of ``files[i]``. Columns: dataset, sod,
    n, mean_iou, mean_mae, mean_fbeta, the two baselines (NaN when absent),
    then any other scalar keys alphabetically.
    """
    if len(files) != len(keys):
        raise ValueError(f"load_quality: {len(files)} files but {len(keys)} (dataset, sod) keys")
    rows, seen = [], {}
    for f, key in zip(files, keys):
        path = Path(f)
        if len(key) != 2:
            raise ValueError(f"load_quality: key for {path} must be (dataset, sod), got {key!r}")
        dataset, sod = (str(k) for k in key)
        if (dataset, sod) in seen:
            raise ValueError(f"load_quality: ({dataset}, {sod}) given twice: {seen[(dataset, sod)]} and {path}")
        seen[(dataset, sod)] = path
        data = _read_json(path, "saliency quality")
        missing = [k for k in QUALITY_REQUIRED if k not in data]
        if missing:
            raise ValueError(f"{path}: saliency quality JSON lacks key(s) {missing}")
        row = {"dataset": dataset, "sod": sod}
        for k, v in data.items():
            if k in ("dataset", "sod"):
                continue
            if k in QUALITY_REQUIRED and not _is_number(v):
                raise ValueError(f"{path}: {k!r} must be a number, got {v!r}")
            if _is_number(v) or (v is None and k in QUALITY_OPTIONAL):
                row[k] = math.nan if v is None else v
        rows.append(row)
    df = pd.DataFrame(rows)
    for k in QUALITY_OPTIONAL:
        if k not in df.columns:
            df[k] = math.nan
    fixed = ["dataset", "sod", *QUALITY_REQUIRED, *QUALITY_OPTIONAL]
    df = df[fixed + sorted(c for c in df.columns if c not in fixed)]
    df["n"] = df["n"].astype(int)
    return df.sort_values(["dataset", "sod"], kind="mergesort").reset_index(drop=True)


# ------------------------------------------------------------------------------ tables


def fmt_mean_std(mean, std, digits: int = 3, signed: bool = False) -> str:
    """``0.613 ± 0.021``; the ``± std`` part is dropped when std is NaN (one seed)."""
    if not _present(mean):
        return "–"
    mean = float(mean)
    if round(mean, digits) == 0:
        mean = 0.0  # avoid "-0.000"
    text = f"{mean:+.{digits}f}" if signed else f"{mean:.{digits}f}"
    if _present(std):
        text += f" ± {float(std):.{digits}f}"
    return text


def _fmt_number(value, digits: int = 3) -> str:
    if not _present(value):
        return "–"
    return f"{float(value):.{digits}f}"


def fmt_ci(delta, low, high, digits: int = 3) -> str:
    """``+0.035 [+0.010, +0.060]``; ``–`` without a delta, no brackets without a CI."""
    if not _present(delta):
        return "–"
    text = fmt_mean_std(delta, None, digits, signed=True)
    if _present(low) and _present(high):
        text += f" [{fmt_mean_std(low, None, digits, signed=True)}, {fmt_mean_std(high, None, digits, signed=True)}]"
    return text


def fmt_p(p) -> str:
    """``0.012``, ``<0.001``; ``–`` when missing."""
    if not _present(p):
        return "–"
    return "<0.001" if float(p) < 0.001 else f"{float(p):.3f}"


def _has_ci(summary: pd.DataFrame) -> bool:
    return bool("ci_low" in summary and summary["ci_low"].notna().any())


def flagged_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """Rows whose runs were flagged by the health checks (health not ``ok``/``unchecked``)."""
    if "health" not in summary:
        return summary.iloc[0:0]
    return summary[~summary["health"].astype(str).isin(["ok", "unchecked", "nan"])]


def health_markdown(summary: pd.DataFrame) -> list[str]:
    """A loud list of the flagged rows (empty when none)."""
    bad = flagged_rows(summary)
    if bad.empty:
        return []
    lines = ["", f"> **⚠ Run health: {len(bad)} of {len(summary)} rows have flagged runs** — their numbers "
             "say little about the images (collapsed: one predicted class or val accuracy at chance; "
             "diverged: non-finite or exploding loss; underfit: final training score below the threshold).", ">"]
    for _, r in bad.iterrows():
        detail = str(r.get("health_detail") or "")
        lines.append(f"> - **{r['health']}** — {r['task']}: {r['config_label']}, {r['condition']}"
                     + (f" ({detail})" if detail and detail != "nan" else ""))
    return lines


def _md_table(header: list[str], rows: list[list[str]], align: list[str]) -> str:
    sep = {"l": ":---", "r": "---:", "c": ":---:"}
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731 - pipes would break the table
    lines = ["| " + " | ".join(esc(h) for h in header) + " |",
             "| " + " | ".join(sep[a] for a in align) + " |"]
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def summary_markdown(summary: pd.DataFrame, quality: pd.DataFrame | None = None) -> str:
    """The Markdown report body (see :func:`write_tables`)."""
    with_ci = _has_ci(summary)
    out = [
        "# Results",
        "",
        "Values are mean ± sample standard deviation over seeds (no ± with a single seed). "
        "Δ is the primary metric of the condition minus that of the original images in the "
        "same configuration; *paired* means it was computed seed by seed.",
    ]
    if with_ci:
        out += ["", "Δ [95 % CI] and p: " + STATS_METHOD]
    else:
        out += ["", "Δ ± std: spread of the per-seed deltas (no per-image scores were given, so no CI or p-value)."]
    out += health_markdown(summary)
    # attrs are lost when the summary is read back from CSV: fall back to the column names.
    metric_cols = summary.attrs.get("metric_columns") or _metric_columns(
        {c[: -len("_mean")] for c in summary.columns if c.endswith("_mean") and c != "delta_mean"}
    )
    tasks = sorted(summary["task"].unique(), key=_task_rank)
    for task in tasks:
        sub = summary[summary["task"] == task]
        metrics = [m for m in metric_cols if f"{m}_mean" in sub and sub[f"{m}_mean"].notna().any()]
        primary = PRIMARY_METRIC.get(task)
        # Primary metric first: it is the one the Δ refers to.
        if primary in metrics:
            metrics = [primary] + [m for m in metrics if m != primary]
        show_dataset = sub["dataset"].nunique() > 1 and "dataset" in sub
        header = (["dataset"] if show_dataset else []) + ["configuration", "condition", "seeds"]
        header += [METRIC_TITLES.get(m, m) for m in metrics]
        header += [f"Δ {METRIC_TITLES.get(primary, primary)}" + (" [95 % CI]" if with_ci else ""), "paired"]
        header += (["p", "p (Holm)"] if with_ci else []) + ["health"]
        rows = []
        for _, r in sub.iterrows():
            row = ([str(r["dataset"])] if show_dataset else []) + [
                str(r["config_label"]), str(r["condition"]), str(int(r["n_seeds"]))
            ]
            row += [fmt_mean_std(r[f"{m}_mean"], r[f"{m}_std"], METRIC_DIGITS.get(m, 3)) for m in metrics]
            if r["variant"] == "original" or not _present(r["delta"]):
                row += ["", ""] + (["", ""] if with_ci else [])
            else:
                ci = _present(r.get("ci_low"))
                row += [fmt_ci(r["delta"], r["ci_low"], r["ci_high"]) if ci
                        else fmt_mean_std(r["delta"], r["delta_std"], signed=True),
                        "yes" if _present(r["paired"]) and str(r["paired"]).lower() == "true" else "no"]
                row += [fmt_p(r.get("p_value")), fmt_p(r.get("p_holm"))] if with_ci else []
            health = str(r.get("health", "unchecked"))
            row.append(health if health in ("ok", "unchecked", "nan") else f"⚠ {health}")
            rows.append(row)
        n_fixed = len(header) - len(metrics) - 4 - (2 if with_ci else 0)
        align = ["l"] * n_fixed + ["r"] * (len(metrics) + 2) + ["c"] + ["r", "r"] * with_ci + ["l"]
        datasets = ", ".join(sorted(sub["dataset"].astype(str).unique())) if "dataset" in sub else ""
        out += ["", f"## {task.capitalize()}" + (f" ({datasets})" if datasets else ""), "",
                _md_table(header, rows, align)]

    if quality is not None and len(quality):
        header = ["dataset", "SOD model", "n", "mean IoU", "MAE", "F-beta",
                  "IoU all-foreground", "IoU centre prior"]
        rows = [
            [str(q["dataset"]), str(q["sod"]), str(int(q["n"])), _fmt_number(q["mean_iou"]),
             _fmt_number(q["mean_mae"]), _fmt_number(q["mean_fbeta"]),
             _fmt_number(q.get("baseline_iou_all_foreground")),
             _fmt_number(q.get("baseline_iou_center_prior"))]
            for _, q in quality.iterrows()
        ]
        out += ["", "## Saliency mask quality", "",
                "IoU / MAE / F-beta of the rembg masks against the true foreground; the baselines "
                "are the IoU of an all-foreground mask and of a centred ellipse prior.", "",
                _md_table(header, rows, ["l", "l"] + ["r"] * 6)]
    return "\n".join(out) + "\n"


_TEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _tex(text) -> str:
    return "".join(_TEX_ESCAPES.get(ch, ch) for ch in str(text))


def _tex_num(text: str) -> str:
    """A formatted number (``+0.035``, ``0.620 ± 0.028``, ``<0.001``) in math mode."""
    if text in ("–", ""):
        return "--" if text else ""
    return "$" + text.replace("±", r"\pm") + "$"


def summary_latex(summary: pd.DataFrame) -> str:
    """One booktabs table per task for papers (needs ``\\usepackage{booktabs}``): configuration,
    condition, seeds, primary metric (mean ± std), Δ [95 % CI], p, p (Holm) and, when any run
    was flagged, health."""
    out = ["% Written by fashion-rembg (reporting.aggregate.summary_latex); needs \\usepackage{booktabs}."]
    with_ci = _has_ci(summary)
    for task in sorted(summary["task"].unique(), key=_task_rank):
        sub = summary[summary["task"] == task]
        metric = PRIMARY_METRIC.get(task, "")
        title = METRIC_TITLES.get(metric, metric)
        show_health = not flagged_rows(sub).empty
        header = ["Configuration", "Condition", "Seeds", _tex(title), r"$\Delta$ " + _tex(title)
                  + (r" [95\,\% CI]" if with_ci else r" $\pm$ std")]
        header += ["$p$", r"$p_{\mathrm{Holm}}$"] if with_ci else []
        header += ["Health"] if show_health else []
        cols = "llr" + "r" * (len(header) - 3 - show_health) + ("l" if show_health else "")
        lines = [r"\begin{table}[t]", r"\centering", r"\small", rf"\begin{{tabular}}{{{cols}}}", r"\toprule",
                 " & ".join(header) + r" \\", r"\midrule"]
        for _, r in sub.iterrows():
            cells = [_tex(r["config_label"]), _tex(r["condition"]), str(int(r["n_seeds"])),
                     _tex_num(fmt_mean_std(r[f"{metric}_mean"], r[f"{metric}_std"]))]
            original = r["variant"] == "original" or not _present(r["delta"])
            if original:
                cells += [""] + (["", ""] if with_ci else [])
            elif with_ci:
                ci = fmt_ci(r["delta"], r.get("ci_low"), r.get("ci_high"))
                cells += [_tex_num(ci), _tex_num(fmt_p(r.get("p_value"))), _tex_num(fmt_p(r.get("p_holm")))]
            else:
                cells += [_tex_num(fmt_mean_std(r["delta"], r["delta_std"], signed=True))]
            if show_health:
                cells.append(_tex(str(r.get("health", "")).replace(";", ", ")))
            lines.append(" & ".join(cells) + r" \\")
        caption = (f"{task.capitalize()}: {title} on the test set, mean $\\pm$ std over seeds; $\\Delta$ = "
                   "condition $-$ original in the same configuration.")
        if with_ci:
            caption += (r" 95\,\% CI: paired bootstrap over test images (seed pairing kept"
                        + (", stratified by class" if task == "classification" else "")
                        + r"); $p$: paired permutation test over images; $p_{\mathrm{Holm}}$: Holm-corrected "
                        "across this table.")
        if sub["config_label"].astype(str).str.contains(STANDIN_INIT, regex=False).any():
            caption += " imagenet (stand-in): seeded random weights, not ImageNet's (demo)."
        lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{caption}}}",
                  rf"\label{{tab:{_tex(task)}}}", r"\end{table}"]
        out += [""] + lines
    return "\n".join(out) + "\n"


def write_tables(
    summary: pd.DataFrame,
    quality: pd.DataFrame | None,
    csv_path: Path | str,
    md_path: Path | str,
    cross: pd.DataFrame | None = None,
    tex_path: Path | str | None = None,
) -> None:
    """Write the summary as CSV (all columns), a Markdown report and, with ``tex_path``, LaTeX.

    The Markdown has one table per task (``mean ± std`` strings and the signed
    delta of the primary metric with its CI and p-values when known, and the run
    health), a loud list of flagged runs, when ``quality`` is given a "Saliency mask
    quality" table and, when ``cross`` (:func:`summarize_cross`) is given, the
    train-on-X / test-on-Y tables.
    """
    csv_path, md_path = Path(csv_path), Path(md_path)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.parent.mkdir(parents=True, exist_ok=True)
    table = summary.copy()
    # None/True/False in an object column: write them explicitly so the CSV is stable.
    table["paired"] = table["paired"].map(lambda v: "" if not _present(v) else str(bool(v)).lower())
    table.to_csv(csv_path, index=False, float_format=_FLOAT_FORMAT, lineterminator="\n")
    text = summary_markdown(summary, quality)
    if cross is not None and len(cross):
        text += "\n" + cross_markdown(cross)
    md_path.write_text(text, encoding="utf-8")
    if tex_path is not None:
        Path(tex_path).parent.mkdir(parents=True, exist_ok=True)
        Path(tex_path).write_text(summary_latex(summary), encoding="utf-8")


# ----------------------------------------------------------------------------- cross-condition


CROSS_TEST_FIELDS = ("test_variant", "test_sod", "test_fill")


def load_cross(metric_files: Sequence[Path | str]) -> pd.DataFrame:
    """One row per (run, test condition): experiment fields, ``seed``, ``test_variant``,
    ``test_sod``, ``test_fill`` and the scalar metrics on that test set.

    Test conditions come from ``cross`` in metrics.json; a file without it contributes its own
    condition (``metrics``) only. Rows are sorted, so file order does not matter.
    """
    if not metric_files:
        raise ValueError("load_cross: no metrics.json files given")
    rows, metric_names = [], set()
    for f in metric_files:
        path = Path(f)
        base, names = _parse_run(path)
        exp = {k: v for k, v in base.items() if k not in names}
        data = _read_json(path, "metrics")
        entries = data.get("cross") or [
            {"variant": exp["variant"], "sod": exp.get("sod"), "fill": exp.get("fill"), "metrics": data["metrics"]}
        ]
        if not isinstance(entries, list):
            raise ValueError(f"{path}: 'cross' must be a list of test conditions")
        for entry in entries:
            if not isinstance(entry, dict) or "variant" not in entry or not isinstance(entry.get("metrics"), dict):
                raise ValueError(f"{path}: each 'cross' entry needs 'variant' and a 'metrics' object")
            row = dict(exp)
            row["test_variant"] = str(entry["variant"])
            row["test_sod"] = entry.get("sod") or None
            row["test_fill"] = entry.get("fill") or None
            for key, value in entry["metrics"].items():
                if _is_number(value):
                    row[key] = float(value)
                    metric_names.add(key)
            rows.append(row)
    df = pd.DataFrame(rows)
    for c in ("sod", "fill", *CROSS_TEST_FIELDS):
        if c not in df.columns:
            df[c] = None
    df = df.sort_values(["task", "id", "seed", "test_variant"], kind="mergesort", key=lambda s: s.astype(str))
    df = df.reset_index(drop=True)
    df.attrs["metric_columns"] = _metric_columns(metric_names)
    return df


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
    ordered = ["task"] + [f for f in ("dataset", "arch") if f in config_fields]
    ordered += sorted(f for f in config_fields if f not in ordered)

    def cond(row, prefix=""):
        return (_variant_rank(str(row[f"{prefix}variant"])),
                str(row[f"{prefix}sod"]) if _present(row[f"{prefix}sod"]) else "",
                str(row[f"{prefix}fill"]) if _present(row[f"{prefix}fill"]) else "")  # fmt: skip

    work = cross.copy()
    work["_config"] = [_config_key(r, ordered) for _, r in work.iterrows()]
    work["_train"] = [cond(r) for _, r in work.iterrows()]
    work["_test"] = [cond(r, "test_") for _, r in work.iterrows()]
    records = []
    for (config, train, test), grp in work.groupby(["_config", "_train", "_test"], sort=False):
        first = grp.iloc[0]
        rec = {f: _plain(first[f]) if _present(first[f]) else None for f in ordered}
        rec.update(_config=config, _train=train, _test=test)
        rec["variant"], rec["sod"], rec["fill"] = str(first["variant"]), train[1] or None, train[2] or None
        rec["condition"] = condition_label(rec["variant"], rec["sod"], rec["fill"])
        rec["test_variant"], rec["test_sod"], rec["test_fill"] = str(first["test_variant"]), test[1] or None, test[2] or None
        rec["test_condition"] = condition_label(rec["test_variant"], rec["test_sod"], rec["test_fill"])
        rec["in_condition"] = train == test
        rec["n_seeds"] = int(grp["seed"].nunique())
        rec["primary_metric"] = PRIMARY_METRIC.get(str(first["task"]))
        for m in metric_cols:
            rec[f"{m}_mean"], rec[f"{m}_std"] = _stats(grp[m].to_numpy(dtype=float))
        rec["health"] = "unchecked" if evidence is None else combine_flags(
            evidence.health.get((str(first["task"]), str(i), int(sd)), []) for i, sd in zip(grp["id"], grp["seed"]))
        records.append(rec)
    out = pd.DataFrame(records)
    out["config_label"] = ""
    for task in out["task"].unique():
        sel = out["task"] == task
        configs = out.loc[sel].drop_duplicates("_config")
        out.loc[sel, "config_label"] = out.loc[sel, "_config"].map(
            dict(zip(configs["_config"], config_labels(configs, ordered))))
    _mark_standin(out)
    order = sorted(out.index, key=lambda i: (
        _task_rank(out.at[i, "task"]), tuple(_sortable(out.at[i, f]) for f in ordered[1:]),
        out.at[i, "_config"], out.at[i, "_train"], out.at[i, "_test"]))  # fmt: skip
    out = out.loc[order].reset_index(drop=True)
    stat_cols = [f"{m}_{s}" for m in metric_cols for s in ("mean", "std")]
    columns = ordered + ["config_label", "variant", "sod", "fill", "condition", "test_variant", "test_sod",
                         "test_fill", "test_condition", "in_condition", "n_seeds", "primary_metric"] + stat_cols + ["health"]
    out = out[columns]
    out.attrs["metric_columns"] = list(metric_cols)
    return out


def cross_markdown(cross: pd.DataFrame) -> str:
    """Train-on-X / test-on-Y tables: one per task, rows (configuration, trained on), columns
    the test conditions, cells the primary metric (mean ± std over seeds; * = own condition)."""
    out = ["## Train on X, test on Y", "",
           "Primary metric of every trained model on the test split of each image condition "
           "(mean ± std over seeds); * marks the condition the model was trained on, ⚠ models flagged by the "
           "run health checks."]  # fmt: skip
    for task in sorted(cross["task"].unique(), key=_task_rank):
        sub = cross[cross["task"] == task]
        metric = str(sub["primary_metric"].iloc[0])
        tests = sorted({(_variant_rank(str(r["test_variant"])), str(r["test_condition"])) for _, r in sub.iterrows()})
        test_labels = [t for _, t in tests]
        header = ["configuration", "trained on"] + [f"{METRIC_TITLES.get(metric, metric)} on {t}" for t in test_labels]
        rows, seen = [], {}
        for _, r in sub.iterrows():
            key = (r["config_label"], r["condition"])
            if key not in seen:
                seen[key] = len(rows)
                health = str(r.get("health", "ok"))
                flag = f" ⚠ {health}" if health not in ("ok", "unchecked", "nan") else ""
                rows.append([str(r["config_label"]), str(r["condition"]) + flag] + ["–"] * len(test_labels))
            cell = fmt_mean_std(r[f"{metric}_mean"], r[f"{metric}_std"]) + (" *" if r["in_condition"] else "")
            rows[seen[key]][2 + test_labels.index(str(r["test_condition"]))] = cell
        out += ["", f"### {task.capitalize()}", "", _md_table(header, rows, ["l", "l"] + ["r"] * len(test_labels))]
    return "\n".join(out) + "\n"


def write_cross(cross: pd.DataFrame, csv_path: Path | str) -> None:
    csv_path = Path(csv_path)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    table = cross.copy()
    table["in_condition"] = table["in_condition"].map(lambda v: str(bool(v)).lower())
    table.to_csv(csv_path, index=False, float_format=_FLOAT_FORMAT, lineterminator="\n")
