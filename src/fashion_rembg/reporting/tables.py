"""The summary as files: CSV (all columns), a Markdown report and LaTeX (booktabs) tables, and the
train-on-X / test-on-Y table. Floats are written with a fixed format, so the same summary gives
byte-identical files.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fashion_rembg.reporting.labels import STANDIN_INIT, is_present, task_rank, variant_rank
from fashion_rembg.reporting.loading import PRIMARY_METRIC, metric_columns

METRIC_TITLES = {
    "top1": "top-1",
    "top5": "top-5",
    "macro_f1": "macro F1",
    "miou": "mIoU",
    "pixel_accuracy": "pixel acc.",
    "segm_ap": "segm AP",
    "segm_ap50": "segm AP50",
    "segm_ap75": "segm AP75",
    "bbox_ap": "bbox AP",
    "mean_segm_quality": "segm quality",
    "best_epoch": "best epoch",
    "epochs_run": "epochs run",
}
# Decimals in the Markdown tables (metrics are fractions in [0, 1]).
# Section titles (default: the task name capitalised).
TASK_TITLES = {"segmentation": "Segmentation", "instance": "Instance segmentation"}
METRIC_DIGITS = {"best_epoch": 1, "epochs_run": 1}
FLOAT_FORMAT = "%.10g"  # enough digits for metrics, avoids 0.6100000000000001 noise
STATS_METHOD = (
    "Δ: rembg − original of the primary metric, averaged over the seeds both ran. "
    "95 % CI: paired percentile bootstrap over test images (2000 resamples; stratified by class for "
    "classification; the same resampled images for both conditions and every seed). "
    "p: two-sided paired permutation test over test images (the two conditions' scores of an image "
    "swapped jointly over seeds; exact when at most 16 images differ, else 9999 Monte Carlo resamples; "
    "with one seed and 0/1 scores this is the exact McNemar test). "
    "p (Holm): Holm–Bonferroni adjusted across the Δ of the table. Segmentation resamples per-image "
    "pixel confusion matrices, so the CI is that of the dataset mIoU. Instance segmentation resamples "
    "COCOeval's per-image matches and re-pools them into COCO AP (unstratified; up to 1000 bootstrap "
    "resamples and 999 Monte Carlo permutations, fewer for large test sets; evaluation.coco_resample), so "
    "the CI and p are those of Δ segm AP."
)


def fmt_mean_std(mean, std, digits: int = 3, signed: bool = False) -> str:
    """``0.613 ± 0.021``; the ``± std`` part is dropped when std is NaN (one seed)."""
    if not is_present(mean):
        return "–"
    mean = float(mean)
    if round(mean, digits) == 0:
        mean = 0.0  # avoid "-0.000"
    text = f"{mean:+.{digits}f}" if signed else f"{mean:.{digits}f}"
    if is_present(std):
        text += f" ± {float(std):.{digits}f}"
    return text


def _fmt_number(value, digits: int = 3) -> str:
    if not is_present(value):
        return "–"
    return f"{float(value):.{digits}f}"


def fmt_ci(delta, low, high, digits: int = 3) -> str:
    """``+0.035 [+0.010, +0.060]``; ``–`` without a delta, no brackets without a CI."""
    if not is_present(delta):
        return "–"
    text = fmt_mean_std(delta, None, digits, signed=True)
    if is_present(low) and is_present(high):
        text += f" [{fmt_mean_std(low, None, digits, signed=True)}, {fmt_mean_std(high, None, digits, signed=True)}]"
    return text


def fmt_p(p) -> str:
    """``0.012``, ``<0.001``; ``–`` when missing."""
    if not is_present(p):
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
    metric_cols = summary.attrs.get("metric_columns") or metric_columns(
        {c[: -len("_mean")] for c in summary.columns if c.endswith("_mean") and c != "delta_mean"}
    )
    tasks = sorted(summary["task"].unique(), key=task_rank)
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
        header += [f"Δ {METRIC_TITLES.get(primary, primary)}" + (" [95 % CI]" if with_ci else "")]
        header += ["paired"] + (["p", "p (Holm)"] if with_ci else []) + ["health"]
        rows = []
        for _, r in sub.iterrows():
            row = ([str(r["dataset"])] if show_dataset else []) + [
                str(r["config_label"]), str(r["condition"]), str(int(r["n_seeds"]))
            ]
            row += [fmt_mean_std(r[f"{m}_mean"], r[f"{m}_std"], METRIC_DIGITS.get(m, 3)) for m in metrics]
            if r["variant"] == "original" or not is_present(r["delta"]):
                row += ["", ""] + (["", ""] if with_ci else [])
            else:
                ci = is_present(r.get("ci_low"))
                row += [fmt_ci(r["delta"], r["ci_low"], r["ci_high"]) if ci
                        else fmt_mean_std(r["delta"], r["delta_std"], signed=True)]
                row.append("yes" if is_present(r["paired"]) and str(r["paired"]).lower() == "true" else "no")
                row += [fmt_p(r.get("p_value")), fmt_p(r.get("p_holm"))] if with_ci else []
            health = str(r.get("health", "unchecked"))
            row.append(health if health in ("ok", "unchecked", "nan") else f"⚠ {health}")
            rows.append(row)
        n_fixed = len(header) - len(metrics) - 4 - (2 if with_ci else 0)
        align = ["l"] * n_fixed + ["r"] * (len(metrics) + 2) + ["c"] + ["r", "r"] * with_ci + ["l"]
        datasets = ", ".join(sorted(sub["dataset"].astype(str).unique())) if "dataset" in sub else ""
        out += ["", f"## {TASK_TITLES.get(task, task.capitalize())}" + (f" ({datasets})" if datasets else ""), "",
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
    # Names the function's former module on purpose: the .tex stays byte-identical to earlier reports.
    out = ["% Written by fashion-rembg (reporting.aggregate.summary_latex); needs \\usepackage{booktabs}."]
    with_ci = _has_ci(summary)
    for task in sorted(summary["task"].unique(), key=task_rank):
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
            original = r["variant"] == "original" or not is_present(r["delta"])
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
        caption = (f"{TASK_TITLES.get(task, task.capitalize())}: {title} on the test set, mean $\\pm$ std over "
                   "seeds; $\\Delta$ = condition $-$ original in the same configuration.")
        if with_ci:
            caption += (r" 95\,\% CI: paired bootstrap over test images (seed pairing kept"
                        + (", stratified by class" if task == "classification" else "")
                        + r"); $p$: paired permutation test over images; $p_{\mathrm{Holm}}$: Holm-corrected "
                        "across this table.")
            if task == "instance":
                caption += " Each resample re-pools COCOeval's per-image matches into segm AP."
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
    quality" table and, when ``cross`` (:func:`fashion_rembg.reporting.aggregate.summarize_cross`) is given, the
    train-on-X / test-on-Y tables.
    """
    csv_path, md_path = Path(csv_path), Path(md_path)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.parent.mkdir(parents=True, exist_ok=True)
    table = summary.copy()
    # None/True/False in an object column: write them explicitly so the CSV is stable.
    table["paired"] = table["paired"].map(lambda v: "" if not is_present(v) else str(bool(v)).lower())
    table.to_csv(csv_path, index=False, float_format=FLOAT_FORMAT, lineterminator="\n")
    text = summary_markdown(summary, quality)
    if cross is not None and len(cross):
        text += "\n" + cross_markdown(cross)
    md_path.write_text(text, encoding="utf-8")
    if tex_path is not None:
        Path(tex_path).parent.mkdir(parents=True, exist_ok=True)
        Path(tex_path).write_text(summary_latex(summary), encoding="utf-8")


def cross_markdown(cross: pd.DataFrame) -> str:
    """Train-on-X / test-on-Y tables: one per task, rows (configuration, trained on), columns
    the test conditions, cells the primary metric (mean ± std over seeds; * = own condition)."""
    out = ["## Train on X, test on Y", "",
           "Primary metric of every trained model on the test split of each image condition "
           "(mean ± std over seeds); * marks the condition the model was trained on, ⚠ models flagged by the "
           "run health checks."]  # fmt: skip
    for task in sorted(cross["task"].unique(), key=task_rank):
        sub = cross[cross["task"] == task]
        metric = str(sub["primary_metric"].iloc[0])
        tests = sorted({(variant_rank(str(r["test_variant"])), str(r["test_condition"])) for _, r in sub.iterrows()})
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
        out += ["", f"### {TASK_TITLES.get(task, task.capitalize())}", "",
                _md_table(header, rows, ["l", "l"] + ["r"] * len(test_labels))]
    return "\n".join(out) + "\n"


def write_cross(cross: pd.DataFrame, csv_path: Path | str) -> None:
    csv_path = Path(csv_path)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    table = cross.copy()
    table["in_condition"] = table["in_condition"].map(lambda v: str(bool(v)).lower())
    table.to_csv(csv_path, index=False, float_format=FLOAT_FORMAT, lineterminator="\n")
