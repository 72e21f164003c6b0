"""Stage entry points that join several modules, called by the thin workflow scripts."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

# The demo generator owns these sub-folders; stale files from an earlier, larger demo must go.
DEMO_SUBDIRS = ("FashionStyle14_v1", "modanet", "truth", "sod_train")


def regenerate_demo(out_dir, **settings) -> dict:
    from .demo import generate_demo

    out_dir = Path(out_dir)
    for sub in DEMO_SUBDIRS:
        shutil.rmtree(out_dir / sub, ignore_errors=True)
    return generate_demo(out_dir, **settings)


def aggregate_to_tables(metric_files, quality_files, csv_path, md_path, cross_csv=None, tex_path=None,
                        quality_keys=()) -> None:
    """summary.csv/.md (+ .tex) with CIs, p-values and run health from the runs' metrics.json and
    the predictions.npz / history.csv beside them; flagged runs are logged as warnings.
    ``quality_keys``: the (dataset, mask set) of each of ``quality_files``, in the same order."""
    from .reporting.aggregate import summarize, summarize_cross
    from .reporting.loading import load_cross, load_evidence, load_quality, load_runs
    from .reporting.tables import write_cross, write_tables

    metric_paths = [Path(p) for p in metric_files]
    runs = load_runs(metric_paths)
    evidence = load_evidence(metric_paths)
    for (task, exp_id, seed), reasons in evidence.flagged():
        log.warning("RUN HEALTH %s/%s seed %d: %s", task, exp_id, seed, "; ".join(reasons))
    quality = None
    if quality_files:
        quality = load_quality([Path(p) for p in quality_files], [tuple(k) for k in quality_keys])
    cross = summarize_cross(load_cross(metric_paths), evidence) if cross_csv else None
    summary = summarize(runs, evidence=evidence)
    write_tables(summary, quality, Path(csv_path), Path(md_path), cross, tex_path=tex_path)
    if cross is not None:
        write_cross(cross, Path(cross_csv))
    log.info("%d runs, %d flagged by the health checks; %d deltas with CI", len(runs), len(evidence.flagged()),
             int(summary["ci_low"].notna().sum()))


def run_label(history_path) -> str:
    """`results/runs/<task>/<experiment>/seed-<n>/history.csv` → `<experiment>/seed-<n>`."""
    path = Path(history_path)
    return f"{path.parent.parent.name}/{path.parent.name}"


def plot_learning_curves_from_runs(history_files, out_png) -> None:
    from .reporting.plots import plot_learning_curves

    plot_learning_curves({run_label(p): Path(p) for p in history_files}, Path(out_png))


def plot_examples_from_files(images, masks, composites, truth, out_png, *, rows: int) -> None:
    from .reporting.examples import plot_example_grid

    truth_path = truth[0] if isinstance(truth, (list, tuple)) and truth else (truth or None)
    plot_example_grid(
        np.load(images, mmap_mode="r"), np.load(masks, mmap_mode="r"), np.load(composites, mmap_mode="r"),
        Path(out_png), n=rows, truth=np.load(truth_path, mmap_mode="r") if truth_path else None,
    )


def controls_to_table(controls: dict, predictions, csv_path, md_path, *, margin: float) -> None:
    """The controls table from the control runs' predictions (named ``<control>__<variant>``)."""
    from .controls import variants
    from .reporting.controls import control_table, write_controls

    files = {name: {v: [str(p) for p in predictions[f"{name}__{v}"]] for v in variants(spec)}
             for name, spec in controls.items()}  # fmt: skip
    write_controls(control_table(controls, files, margin=margin), csv_path, md_path)
