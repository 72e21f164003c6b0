"""Figures of the results: variant bars, learning curves, cross-condition heatmap, dose–response.

All figures are drawn on a bare :class:`matplotlib.figure.Figure` (Agg canvas,
no pyplot global state), with a fixed style, fixed dpi and no ``bbox_inches``
cropping, so the pixel size is known in advance, and saved without the
"Software" metadata so the same inputs give byte-identical PNGs.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import matplotlib.patches
import matplotlib.ticker
import numpy as np
import pandas as pd

# Agg canvas attached explicitly (no pyplot): headless, and no global backend switch.
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from fashion_rembg.reporting.aggregate import learning_curve_data
from fashion_rembg.reporting.figure_style import DPI, report_style, save_png, snap_inches
from fashion_rembg.reporting.labels import condition_key, is_present, task_rank, variant_rank

# Okabe-Ito colour-blind-safe palette; original is always the first (blue).
ORIGINAL_COLOR = "#0072B2"
CONDITION_COLORS = ["#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
LINESTYLES = ["-", "--", ":", "-."]
METRIC_AXIS_LABEL = {"top1": "top-1 accuracy", "miou": "mIoU", "segm_ap": "segm AP"}
VAL_SCORE_LABEL = {"classification": "val accuracy", "segmentation": "val mIoU", "instance": "val segm AP"}


def _wrap(label: str, width: int) -> str:
    """Break a label at commas/spaces into lines of about ``width`` characters."""
    return "\n".join(textwrap.wrap(label, width, break_on_hyphens=False)) or label


def _conditions(table: pd.DataFrame) -> list[tuple[tuple, str, str]]:
    """(sort key, label, variant) of each row's condition, from the table's explicit columns."""
    return [(condition_key(r["variant"], r.get("sod"), r.get("fill")), r["condition"], r["variant"])
            for _, r in table.iterrows()]


def condition_colors(conditions: Sequence[tuple[tuple, str, str]]) -> dict[str, str]:
    """Colour per condition label; ``conditions`` are (sort key, label, variant) triples."""
    colors, i = {}, 0
    for _, label, variant in sorted(set(conditions)):
        if variant == "original":
            colors[label] = ORIGINAL_COLOR
        else:
            colors[label] = CONDITION_COLORS[i % len(CONDITION_COLORS)]
            i += 1
    return colors


# ------------------------------------------------------------------------ variant bars


def _with_ci(summary: pd.DataFrame) -> bool:
    return bool("ci_low" in summary and "ci_high" in summary and summary["ci_low"].notna().any())


def variant_bars_figsize(summary: pd.DataFrame, dpi: int = DPI) -> tuple[float, float]:
    """Default figure size (inches) of :func:`plot_variant_bars`.

    Each task panel is ``max(4.0, 1.2 + n_configs * (0.35 * n_conditions + 0.4))``
    wide; the height is 3.8 in, plus 2.2 in for the Δ-with-CI panels when the
    summary has confidence intervals (both snapped to whole pixels at ``dpi``).
    """
    return (snap_inches(sum(_panel_widths(summary)), dpi), snap_inches(3.8 + 2.2 * _with_ci(summary), dpi))


def _panel_widths(summary: pd.DataFrame) -> list[float]:
    widths = []
    for task in _tasks(summary):
        sub = summary[summary["task"] == task]
        n_cfg, n_cond = sub["config_label"].nunique(), sub["condition"].nunique()
        widths.append(max(4.0, 1.2 + n_cfg * (0.35 * n_cond + 0.4)))
    return widths


def _tasks(df: pd.DataFrame) -> list[str]:
    return sorted(df["task"].astype(str).unique(), key=task_rank)


def plot_variant_bars(
    summary: pd.DataFrame,
    out_png: Path | str,
    dpi: int = DPI,
    figsize: tuple[float, float] | None = None,
) -> Path:
    """Primary metric per configuration and condition, one panel per task.

    Bars are grouped by configuration (``config_label``); one bar per condition
    (original, rembg (sod, fill), ...), error bars = sample std over seeds
    (omitted with one seed). Non-original bars are annotated with Δ vs original.
    When the summary has ``ci_low``/``ci_high`` (see ``aggregate.summarize``), a
    second row of panels shows each Δ with its 95 % CI as error bars (``*``: Holm-
    adjusted p < 0.05).
    """
    required = {"task", "config_label", "variant", "condition", "primary_metric"}
    missing = sorted(required - set(summary.columns))
    if missing:
        raise ValueError(f"plot_variant_bars: summary lacks columns {missing} (use aggregate.summarize)")
    if summary.empty:
        raise ValueError("plot_variant_bars: empty summary")
    summary = summary.reset_index(drop=True)
    tasks = _tasks(summary)
    conds = _conditions(summary)
    colors = condition_colors(conds)
    figsize = figsize or variant_bars_figsize(summary, dpi)

    with report_style():
        fig = Figure(figsize=figsize, layout="constrained")
        with_ci = _with_ci(summary)
        grid = fig.subplots(1 + with_ci, len(tasks), squeeze=False, width_ratios=_panel_widths(summary),
                            height_ratios=[3.8, 2.2] if with_ci else None)  # fmt: skip
        axes = grid[0]
        if with_ci:
            for ax, task in zip(grid[1], tasks):
                _plot_delta_ci(ax, summary[summary["task"] == task], colors)
        for ax, task in zip(axes, tasks):
            sub = summary[summary["task"] == task]
            metric = str(sub["primary_metric"].iloc[0])
            configs = list(dict.fromkeys(sub["config_label"].astype(str)))
            task_conds = [lab for _, lab, _ in sorted(set(_conditions(sub)))]
            width = 0.8 / len(task_conds)
            top = 0.0
            for j, cond in enumerate(task_conds):
                rows = sub[sub["condition"] == cond].set_index("config_label")
                for i, cfg in enumerate(configs):
                    if cfg not in rows.index:
                        continue
                    r = rows.loc[cfg]
                    mean, std = float(r[f"{metric}_mean"]), float(r[f"{metric}_std"])
                    if math.isnan(mean):
                        continue
                    x = i - 0.4 + width * (j + 0.5)
                    ax.bar(x, mean, width * 0.92, color=colors[cond], edgecolor="white",
                           linewidth=0.5, zorder=2)
                    err = std if not math.isnan(std) else 0.0
                    if err > 0:
                        ax.errorbar(x, mean, yerr=err, color="#333333", elinewidth=0.9,
                                    capsize=2.5, capthick=0.9, zorder=3)
                    top = max(top, mean + err)
                    delta = r.get("delta")
                    if r["variant"] != "original" and is_present(delta):
                        ax.annotate(f"{float(delta):+.3f}", (x, mean + err), xytext=(0, 2),
                                    textcoords="offset points", ha="center", va="bottom",
                                    fontsize=6.5, color="#333333", rotation=90 if len(task_conds) > 3 else 0)
            ax.set_xticks(range(len(configs)))
            # Wrapped, not rotated: long configuration labels stay inside the figure.
            ax.set_xticklabels([_wrap(c, 22) for c in configs], fontsize=7)
            ax.set_xlim(-0.6, len(configs) - 0.4)
            ax.set_ylim(0, max(top * 1.18, 0.05))
            ax.set_ylabel(METRIC_AXIS_LABEL.get(metric, metric))
            ax.tick_params(axis="x", length=0)
            datasets = ", ".join(sorted(sub["dataset"].astype(str).unique())) if "dataset" in sub else ""
            ax.set_title(f"{task.capitalize()}" + (f" · {datasets}" if datasets else ""), loc="left")
            seeds = sorted(set(sub["n_seeds"].astype(int))) if "n_seeds" in sub else []
            note = "bars: mean" + (" ± std" if any(s > 1 for s in seeds) else "")
            note += f" over {'/'.join(map(str, seeds))} seed{'s' if seeds != [1] else ''}"
            note += "; numbers: Δ vs original"
            ax.set_xlabel(note, fontsize=6.5, color="#666666")
        handles = [Patch(facecolor=colors[c], label=c) for _, c, _ in sorted(set(conds))]
        fig.legend(handles=handles, loc="outside upper center", ncols=min(len(handles), 4))
        return save_png(fig, out_png, dpi)


def _plot_delta_ci(ax, sub: pd.DataFrame, colors: dict[str, str]) -> None:
    """Δ vs original per configuration and condition, 95 % CI as error bars, zero line."""
    metric = str(sub["primary_metric"].iloc[0])
    configs = list(dict.fromkeys(sub["config_label"].astype(str)))
    deltas = sub[(sub["variant"] != "original") & sub["delta"].notna()]
    conds = [lab for _, lab, _ in sorted(set(_conditions(deltas)))]
    width = 0.8 / max(len(conds), 1)
    ax.axhline(0.0, color="#333333", linewidth=0.8, zorder=1)
    for j, cond in enumerate(conds):
        rows = deltas[deltas["condition"] == cond]
        for _, r in rows.iterrows():
            i = configs.index(str(r["config_label"]))
            x, d = i - 0.4 + width * (j + 0.5), float(r["delta"])
            lo, hi = r.get("ci_low"), r.get("ci_high")
            if is_present(lo) and is_present(hi):
                # Drawn around the interval's middle: a percentile CI need not contain Δ (e.g. mIoU, few images).
                lo, hi = float(lo), float(hi)
                ax.errorbar(x, (lo + hi) / 2, yerr=(hi - lo) / 2, fmt="none", ecolor=colors[cond], elinewidth=1.2,
                            capsize=3, zorder=3)  # fmt: skip
            ax.plot(x, d, "o", color=colors[cond], markersize=4, zorder=4)
            p_holm = r.get("p_holm")
            if is_present(p_holm) and float(p_holm) < 0.05:
                top = float(hi) if is_present(hi) else d
                ax.annotate("*", (x, top), xytext=(0, 1), textcoords="offset points", ha="center", va="bottom",
                            fontsize=9, color="#333333")  # fmt: skip
    ax.set_xticks(range(len(configs)))
    ax.set_xticklabels([_wrap(c, 22) for c in configs], fontsize=7)
    ax.set_xlim(-0.6, len(configs) - 0.4)
    ax.set_ylabel(f"Δ {METRIC_AXIS_LABEL.get(metric, metric)}")
    ax.tick_params(axis="x", length=0)
    ax.set_xlabel("Δ vs original, 95 % CI (image bootstrap); * Holm p < 0.05",
                  fontsize=6.5, color="#666666")  # fmt: skip


# --------------------------------------------------------------------- learning curves

def learning_curves_figsize(n_tasks: int, dpi: int = DPI) -> tuple[float, float]:
    """Default size (inches) of :func:`plot_learning_curves`: 10 × (0.5 + 3.0 per task row)."""
    return (snap_inches(10.0, dpi), snap_inches(0.5 + 3.0 * n_tasks, dpi))


def plot_learning_curves(
    history_files: Mapping[str, Path | str],
    out_png: Path | str,
    dpi: int = DPI,
    figsize: tuple[float, float] | None = None,
) -> Path:
    """Validation score and training loss per epoch, mean over seeds per experiment.

    Grouping as in :func:`fashion_rembg.reporting.aggregate.learning_curve_data`. One row of panels per task;
    colour = condition (as in the bar plot), line style = configuration, the
    shaded band is ± std over seeds (absent with one seed).
    """
    data = learning_curve_data(history_files)
    tasks = sorted(data["task"].unique(), key=task_rank)
    firsts = data.drop_duplicates("experiment")
    colors = condition_colors(_conditions(firsts))
    figsize = figsize or learning_curves_figsize(len(tasks), dpi)

    with report_style():
        fig = Figure(figsize=figsize, layout="constrained")
        axes = fig.subplots(len(tasks), 2, squeeze=False)
        for row, task in enumerate(tasks):
            ax_val, ax_loss = axes[row]
            sub = data[data["task"] == task]
            configs = list(dict.fromkeys(sub["config"]))
            styles = {c: LINESTYLES[i % len(LINESTYLES)] for i, c in enumerate(configs)}
            max_epochs = 1
            for exp in dict.fromkeys(sub["experiment"]):
                cur = sub[sub["experiment"] == exp]
                color, style = colors[cur["condition"].iloc[0]], styles[cur["config"].iloc[0]]
                epochs = cur["epoch"].to_numpy(dtype=float)
                max_epochs = max(max_epochs, len(epochs))
                for ax, col in ((ax_val, "val_score"), (ax_loss, "train_loss")):
                    mean = cur[f"{col}_mean"].to_numpy(dtype=float)
                    std = cur[f"{col}_std"].to_numpy(dtype=float)
                    ax.plot(epochs, mean, color=color, linestyle=style, linewidth=1.6,
                            marker="o" if len(epochs) <= 15 else None, markersize=2.8)
                    if np.isfinite(std).any():
                        ax.fill_between(epochs, mean - np.nan_to_num(std), mean + np.nan_to_num(std),
                                        color=color, alpha=0.15, linewidth=0)
            title = task.capitalize() if task else "Runs"
            ax_val.set_title(f"{title}: validation score", loc="left")
            ax_loss.set_title(f"{title}: training loss", loc="left")
            ax_val.set_ylabel(VAL_SCORE_LABEL.get(task, "val score"))
            ax_loss.set_ylabel("train loss")
            for ax in (ax_val, ax_loss):
                ax.set_xlabel("epoch")
                ax.grid(True, axis="both")
                if max_epochs <= 20:  # integer epoch ticks
                    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
            sub_conds = sorted(set(_conditions(sub.drop_duplicates("experiment"))))
            handles = [Line2D([], [], color=colors[c], linewidth=2, label=c) for _, c, _ in sub_conds]
            if len(configs) > 1 or configs[0] != "":
                handles += [Line2D([], [], color="#444444", linestyle=styles[c], linewidth=1.6, label=c)
                            for c in configs]
            ax_loss.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                           borderaxespad=0)
        return save_png(fig, out_png, dpi)


# ------------------------------------------------------------------ cross-condition heatmap

CROSS_ROW_IN = 0.34  # inches per (configuration, trained-on) row
CROSS_COL_IN = 1.1  # inches per test condition
CROSS_LABEL_IN = 3.6  # row labels (wrapped)
CROSS_LABEL_CHARS = 52


def _cross_rows(sub: pd.DataFrame) -> list[tuple[str, str]]:
    return list(dict.fromkeys(zip(sub["config_label"].astype(str), sub["condition"].astype(str))))


def cross_condition_figsize(cross: pd.DataFrame, dpi: int = DPI) -> tuple[float, float]:
    """One panel per task, stacked; width from the most test conditions, height from the rows."""
    tasks = _tasks(cross)
    cols = max(cross[cross["task"] == t]["test_condition"].nunique() for t in tasks)
    lines = sum(
        sum(
            max(1, len(_wrap(f"{c} · {t}", CROSS_LABEL_CHARS).splitlines()))
            for c, t in _cross_rows(cross[cross["task"] == k])
        )
        for k in tasks
    )  # fmt: skip
    return snap_inches(CROSS_LABEL_IN + 1.2 + CROSS_COL_IN * cols, dpi), snap_inches(
        0.6 + 1.3 * len(tasks) + CROSS_ROW_IN * lines * 0.75, dpi
    )


def plot_cross_condition(
    cross: pd.DataFrame, out_png: Path | str, dpi: int = DPI, figsize: tuple[float, float] | None = None
) -> Path:
    """Train-on-X / test-on-Y heatmap of the primary metric (see aggregate.summarize_cross).

    One panel per task (stacked); rows = configuration · trained on, columns = tested on; cells
    show the mean over seeds, the model's own condition is outlined.
    """
    required = {"task", "config_label", "condition", "test_condition", "test_variant", "in_condition", "primary_metric"}
    missing = sorted(required - set(cross.columns))
    if missing:
        raise ValueError(f"plot_cross_condition: table lacks columns {missing} (use aggregate.summarize_cross)")
    if cross.empty:
        raise ValueError("plot_cross_condition: empty table")
    tasks = _tasks(cross)
    figsize = figsize or cross_condition_figsize(cross, dpi)
    heights = [max(1.0, len(_cross_rows(cross[cross["task"] == t]))) for t in tasks]
    with report_style():
        fig = Figure(figsize=figsize, layout="constrained")
        axes = fig.subplots(len(tasks), 1, squeeze=False, height_ratios=heights)[:, 0]
        for ax, task in zip(axes, tasks):
            sub = cross[cross["task"] == task]
            metric = str(sub["primary_metric"].iloc[0])
            cols = [c for _, c in sorted({(variant_rank(str(r["test_variant"])), str(r["test_condition"]))
                                          for _, r in sub.iterrows()})]  # fmt: skip
            rows = _cross_rows(sub)
            values = np.full((len(rows), len(cols)), np.nan)
            own = np.zeros_like(values, dtype=bool)
            for _, r in sub.iterrows():
                i, j = rows.index((str(r["config_label"]), str(r["condition"]))), cols.index(str(r["test_condition"]))
                values[i, j] = float(r[f"{metric}_mean"])
                own[i, j] = bool(r["in_condition"])
            finite = values[np.isfinite(values)]
            lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
            image = ax.imshow(np.ma.masked_invalid(values), cmap="viridis", vmin=lo, vmax=max(hi, lo + 1e-6),
                              aspect="auto", interpolation="nearest")  # fmt: skip
            for i in range(len(rows)):
                for j in range(len(cols)):
                    if np.isfinite(values[i, j]):
                        bright = (values[i, j] - lo) / max(hi - lo, 1e-6) > 0.6
                        ax.text(j, i, f"{values[i, j]:.3f}", ha="center", va="center", fontsize=7,
                                color="black" if bright else "white")  # fmt: skip
                    if own[i, j]:
                        ax.add_patch(matplotlib.patches.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False,
                                                                  edgecolor="#D55E00", linewidth=1.8))  # fmt: skip
            ax.set_xticks(range(len(cols)), [_wrap(c, 16) for c in cols], fontsize=7)
            ax.set_yticks(range(len(rows)), [_wrap(f"{c} · {t}", CROSS_LABEL_CHARS) for c, t in rows], fontsize=7)
            ax.set_xlabel("tested on  (rows: configuration · trained on; outlined: the training condition)")
            ax.grid(False)
            ax.set_title(f"{task.capitalize()}: {METRIC_AXIS_LABEL.get(metric, metric)}", loc="left")
            fig.colorbar(image, ax=ax, shrink=0.9, pad=0.01)
        return save_png(fig, out_png, dpi)


def figure_dose_response(controls_csv: Path | str, out_png: Path | str) -> Path:
    """Δ top-1 (rembg − original) with its 95 % CI against clutter, one point per control set
    whose background carries no label; the other controls (e.g. the shortcut) as labelled points."""
    from fashion_rembg.reporting.controls import dose_response_points, read_controls

    levels, others = dose_response_points(read_controls(controls_csv))
    with report_style():
        fig = Figure(figsize=(snap_inches(5.0, DPI), snap_inches(3.4, DPI)), dpi=DPI)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        ax.axhline(0.0, color="0.5", linewidth=0.8)
        # rembg − original at every level (the null's verdict may use oracle)
        for part, on_curve, marker, colour in ((levels, True, "o", "#1f77b4"), (others, False, "s", "#d62728")):
            if part.empty:
                continue
            err = np.vstack([part["rembg_delta"] - part["rembg_ci_low"], part["rembg_ci_high"] - part["rembg_delta"]])
            err = np.clip(err, 0.0, None)  # a percentile CI may end a hair inside its own point estimate
            ax.errorbar(part["clutter"], part["rembg_delta"], yerr=err, fmt=marker + ("-" if on_curve else ""),
                        color=colour, capsize=3, label="background carries no label" if on_curve
                        else "background correlated with the label")  # fmt: skip
            for r in part.itertuples():
                ax.annotate(
                    f"{r.control} ({r.verdict})",
                    (r.clutter, r.rembg_delta),
                    textcoords="offset points",
                    xytext=(5, 4),
                    fontsize=7,
                )
        ax.set_xlabel("background clutter (generator knob)")
        ax.set_ylabel("Δ top-1, rembg − original (95 % CI)")
        ax.set_title("Known-answer controls")
        ax.legend(loc="best", fontsize=7)
        fig.tight_layout()
        return save_png(fig, out_png, DPI)


# --------------------------------------------------------------------- per-class AP


def plot_per_class_ap(deltas: pd.DataFrame, out_png: Path | str, dpi: int = DPI) -> Path:
    """Per-class Δ segm AP (condition − original, mean over seeds; ``aggregate.per_class_ap_deltas``):
    one panel per (configuration, condition), garments sorted from most lost to most gained."""
    panels = list(dict.fromkeys(zip(deltas["config"], deltas["config_label"], deltas["condition"])))
    n_classes = max([int((deltas["config"] == c).sum()) for c, _, _ in panels] or [1])
    with report_style():
        fig = Figure(figsize=(snap_inches(4.2 * max(len(panels), 1), dpi), snap_inches(1.2 + 0.22 * n_classes, dpi)),
                     layout="constrained")
        if not panels:
            ax = fig.add_subplot(1, 1, 1)
            ax.text(0.5, 0.5, "no per-class AP to compare (no original/condition pair of instance runs)",
                    ha="center", va="center", fontsize=8)  # fmt: skip
            ax.set_axis_off()
        for k, (config, config_label, condition) in enumerate(panels):
            ax = fig.add_subplot(1, len(panels), k + 1)
            sub = deltas[(deltas["config"] == config) & (deltas["condition"] == condition)]
            values = sub["delta"].to_numpy(dtype=float)
            ax.barh(np.arange(len(sub)), values, color=["#2a7ab9" if v >= 0 else "#c8553d" for v in values])
            ax.set_yticks(np.arange(len(sub)))
            ax.set_yticklabels(sub["class"].astype(str), fontsize=7)
            ax.axvline(0.0, color="#333333", linewidth=0.8)
            ax.set_xlabel("Δ segm AP (condition − original)", fontsize=7)
            ax.set_title(_wrap(f"{config_label}: {condition}", 40), fontsize=7.5)
        return save_png(fig, out_png, dpi)
