"""Load run outputs: ``metrics.json`` per experiment × seed (the runs, their cross-condition tests),
the per-image scores and health of each run (``predictions.npz``, ``history.csv`` beside it) and the
saliency-mask quality JSONs. Rows are sorted, so the same files in any order give the same tables.

Terminology: a **run** is one ``metrics.json`` (one experiment, one seed); configuration and
condition are explained in :mod:`fashion_rembg.reporting.labels`.
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

from fashion_rembg.reporting.health import HealthThresholds, assess_run
from fashion_rembg.reporting.labels import STANDIN_INIT, TASK_ORDER, is_number

log = logging.getLogger(__name__)

# Primary metric per task: the one the study compares between variants.
PRIMARY_METRIC = {"classification": "top1", "segmentation": "miou", "instance": "segm_ap"}
# Known scalar metrics, in display order; other scalar metrics follow alphabetically.
KNOWN_METRICS = {
    "classification": ["top1", "top5", "macro_f1"],
    "segmentation": ["miou", "pixel_accuracy"],
    "instance": ["segm_ap", "segm_ap50", "segm_ap75", "bbox_ap", "mean_segm_quality"],
}
REQUIRED_EXPERIMENT_KEYS = ("id", "task", "dataset", "arch", "variant")
# Quality JSON keys: required ones first, then optional baselines.
QUALITY_REQUIRED = ("n", "mean_iou", "mean_mae", "mean_fbeta")
QUALITY_OPTIONAL = ("baseline_iou_all_foreground", "baseline_iou_center_prior")
CROSS_TEST_FIELDS = ("test_variant", "test_sod", "test_fill")
HISTORY_COLUMNS = ("epoch", "train_loss", "val_score")


def _cell(value):
    """Make an experiment value hashable/tabular: lists and dicts become canonical JSON."""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return value


def read_json(path: Path, what: str) -> dict:
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


def parse_run(path: Path) -> tuple[dict, set[str]]:
    """Row of one run plus the names of its metric columns."""
    data = read_json(path, "metrics")
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
        if key in KNOWN_METRICS[task] and not is_number(value):
            raise ValueError(f"{path}: metric {key!r} must be a number, got {value!r}")
        if is_number(value):  # lists/dicts (confusion matrix, per-class) are not aggregated
            if key in row:
                raise ValueError(f"{path}: metric {key!r} clashes with an experiment field")
            row[key] = float(value)
            metric_names.add(key)
    return row, metric_names


def load_experiment(path: Path | str) -> dict:
    """The experiment fields of one run's ``metrics.json`` (no seed, no metrics)."""
    row, names = parse_run(Path(path))
    return {k: v for k, v in row.items() if k not in names and k != "seed"}


def metric_columns(present: set[str]) -> list[str]:
    """Metric names in display order: the known ones per task, then the others alphabetically."""
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
        row, names = parse_run(path)
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
    metric_cols = metric_columns(metric_names)
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
        base, names = parse_run(path)
        exp = {k: v for k, v in base.items() if k not in names}
        data = read_json(path, "metrics")
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
                if is_number(value):
                    row[key] = float(value)
                    metric_names.add(key)
            rows.append(row)
    df = pd.DataFrame(rows)
    for c in ("sod", "fill", *CROSS_TEST_FIELDS):
        if c not in df.columns:
            df[c] = None
    df = df.sort_values(["task", "id", "seed", "test_variant"], kind="mergesort", key=lambda s: s.astype(str))
    df = df.reset_index(drop=True)
    df.attrs["metric_columns"] = metric_columns(metric_names)
    return df


# ------------------------------------------------------------------------- per-image evidence


@dataclass
class RunScores:
    """Per-test-image scores of one run on its own condition (predictions.npz)."""

    ids: np.ndarray  # (N,) test image ids
    scores: np.ndarray  # (N,) 0/1 correctness or segm quality, or (N, C, C) per-image pixel confusion matrices
    strata: np.ndarray | None  # (N,) true class (classification), the bootstrap strata
    n_predicted_classes: int | None  # None: not checked (instance runs)
    ap: object | None = None  # instance: evaluation.coco_resample.ApMatches of the own condition (segm)


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
    if task == "instance":  # per-image segm quality at IoU 0.5 (coco_eval.per_image_quality)
        if f"quality_{key}" not in data:
            raise ValueError(f"{path}: predictions.npz lacks 'quality_{key}' (see docs/CONTRACTS.md)")
        return RunScores(ids, data[f"quality_{key}"].astype(np.float64), None, None, run_ap_matches(path, key))
    if f"confusion_{key}" not in data:
        log.warning("%s: no per-image confusion matrices (written by an older evaluation job): no CI or p-value "
                    "for this run; re-run its evaluation job to get them", path)  # fmt: skip
        return None
    confusions = data[f"confusion_{key}"].astype(np.float64)
    predicted = int(np.count_nonzero(confusions.sum(axis=(0, 1))))
    return RunScores(ids, confusions, None, predicted)


def run_ap_matches(predictions: Path, key: str):
    """COCOeval's per-image segm matches of an instance run's own condition, from the re-scorable files
    next to its predictions (<run>/coco/<key>/); None (with a warning) when they are missing."""
    folder = predictions.parent / "coco" / key
    gt_file, results_file = folder / "ground_truth.json", folder / "results_segm.json"
    if not (gt_file.is_file() and results_file.is_file()):
        log.warning("%s: no COCO files (ground_truth.json, results_segm.json): no CI or p-value for this run; "
                    "re-run its evaluation job to get them", folder)  # fmt: skip
        return None
    from fashion_rembg.evaluation.coco_eval import coco_from_dict
    from fashion_rembg.evaluation.coco_resample import ap_matches

    try:
        gt = coco_from_dict(json.loads(gt_file.read_text()))
        results = json.loads(results_file.read_text())
        if not isinstance(results, list):
            raise ValueError("results_segm.json is not a list of detections")
        return ap_matches(gt, results, gt.getImgIds(), "segm")
    except (ValueError, OSError, KeyError, TypeError, AssertionError) as exc:  # pycocotools asserts on bad input
        raise ValueError(f"{folder}: unreadable COCO files ({exc or type(exc).__name__}); re-run the evaluation "
                         "job") from exc


def read_history(path: Path, *, required: bool = False) -> pd.DataFrame | None:
    """A run's ``history.csv``; None when it is absent and not ``required``. A required one must
    hold at least one epoch and the columns of docs/CONTRACTS.md."""
    if not path.is_file():
        if required:
            raise FileNotFoundError(f"history file not found: {path}")
        return None
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: unreadable history.csv ({exc}); re-run the training job") from exc
    if required:
        missing = [c for c in HISTORY_COLUMNS if c not in df.columns]
        if missing:
            raise ValueError(f"{path}: history.csv lacks column(s) {missing} (see docs/CONTRACTS.md)")
        if df.empty:
            raise ValueError(f"{path}: history.csv has no epochs")
    return df


def load_evidence(metric_files: Sequence[Path | str], thresholds: HealthThresholds | None = None) -> Evidence:
    """Per-image scores and health of every run, from the ``predictions.npz`` and ``history.csv``
    next to each ``metrics.json`` (results/runs/<task>/<id>/seed-<n>/). A missing sibling leaves
    that part unchecked."""
    evidence = Evidence()
    for f in metric_files:
        path = Path(f)
        row, _ = parse_run(path)
        task, key = str(row["task"]), (str(row["task"]), str(row["id"]), int(row["seed"]))
        document = read_json(path, "metrics")
        n_classes = len(document.get("classes") or []) or None
        train_score = (document.get("metrics") or {}).get("train_score")
        scores = None
        if (path.parent / "predictions.npz").is_file():
            scores = load_run_scores(path.parent / "predictions.npz", task)
        if scores is not None:
            evidence.scores[key] = scores
        # instance: test images where a confident detection matched an object (per-image quality > 0)
        matched = int(np.count_nonzero(scores.scores)) if task == "instance" and scores is not None else None
        evidence.health[key] = assess_run(task, read_history(path.parent / "history.csv"), n_classes,
                                          scores.n_predicted_classes if scores else None,
                                          thresholds or HealthThresholds(),
                                          train_score=train_score, matched_images=matched)  # fmt: skip
    return evidence


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
        data = read_json(path, "saliency quality")
        missing = [k for k in QUALITY_REQUIRED if k not in data]
        if missing:
            raise ValueError(f"{path}: saliency quality JSON lacks key(s) {missing}")
        row = {"dataset": dataset, "sod": sod}
        for k, v in data.items():
            if k in ("dataset", "sod"):
                continue
            if k in QUALITY_REQUIRED and not is_number(v):
                raise ValueError(f"{path}: {k!r} must be a number, got {v!r}")
            if is_number(v) or (v is None and k in QUALITY_OPTIONAL):
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
