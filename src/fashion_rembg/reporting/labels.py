"""Names and order of what the tables and figures show: tasks, conditions and configurations.

* **configuration** – the experiment fields other than ``id``, ``variant``, ``sod`` and ``fill``:
  what stays fixed when the original images are compared with their background-removed
  counterparts (task, dataset, arch, hyper-parameters).
* **condition** – ``variant`` plus, for rembg, the saliency model ``sod`` and the background
  ``fill`` (e.g. ``rembg (u2net, white)``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

TASK_ORDER = ["classification", "segmentation", "instance"]
VARIANT_ORDER = ["original", "rembg", "oracle"]
# Experiment fields that describe the condition rather than the configuration.
CONDITION_FIELDS = ("id", "variant", "sod", "fill")
# The demo writes seeded random weights in torchvision's format instead of ImageNet's.
STANDIN_INIT = "imagenet (stand-in)"


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_present(value) -> bool:
    """False for None, NaN and pandas' missing values."""
    if value is None:
        return False
    if isinstance(value, float) and math.isnan(value):
        return False
    try:
        return not bool(pd.isna(value))
    except (TypeError, ValueError):
        return True


def plain(value):
    """numpy scalars → Python scalars so json.dumps is stable."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def variant_rank(variant: str) -> tuple[int, str]:
    return (VARIANT_ORDER.index(variant) if variant in VARIANT_ORDER else len(VARIANT_ORDER), variant)


def task_rank(task: str) -> tuple[int, str]:
    return (TASK_ORDER.index(task) if task in TASK_ORDER else len(TASK_ORDER), task)


def condition_key(variant, sod=None, fill=None) -> tuple:
    """Sort key of a condition: variant order (original, rembg, oracle), then sod and fill."""
    return (variant_rank(str(variant)), str(sod) if is_present(sod) else "", str(fill) if is_present(fill) else "")


def condition_label(variant: str, sod=None, fill=None) -> str:
    """Human label of a condition, e.g. ``rembg (u2net, white)``."""
    extra = [str(v) for v in (sod, fill) if is_present(v) and str(v) != ""]
    return f"{variant} ({', '.join(extra)})" if extra else str(variant)


def order_config_fields(fields: Sequence[str]) -> list[str]:
    """Configuration fields in display order: task, dataset, arch, then the rest alphabetically."""
    ordered = ["task"] + [f for f in ("dataset", "arch") if f in fields]
    return ordered + sorted(f for f in fields if f not in ordered)


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
        return str(_fmt_value(plain(value))) if is_present(value) else None

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


def config_labels_by_task(table: pd.DataFrame, keys: pd.Series, fields: Sequence[str]) -> pd.Series:
    """The configuration label of every row of ``table`` (``keys``: its :func:`config_key`), computed
    per task so a label only mentions what varies within its task."""
    out = pd.Series("", index=table.index, dtype=object)
    for task in table["task"].unique():
        sel = table["task"] == task
        first = ~keys[sel].duplicated()
        mapping = dict(zip(keys[sel][first], config_labels(table.loc[sel][first], fields)))
        out[sel] = keys[sel].map(mapping)
    return out


def mark_standin(table: pd.DataFrame) -> None:
    """Stand-in ImageNet weights are named in every label, even where they are the usual init."""
    if "init" not in table:
        return
    sel = (table["init"] == STANDIN_INIT) & ~table["config_label"].astype(str).str.contains(STANDIN_INIT, regex=False)
    table.loc[sel, "config_label"] = table.loc[sel, "config_label"].astype(str) + f" · {STANDIN_INIT}"


def config_key(row, fields: Sequence[str]) -> str:
    """Canonical string of a row's configuration (missing fields left out)."""
    items = {f: plain(row[f]) for f in fields if f in row and is_present(row[f])}
    return json.dumps(items, sort_keys=True, default=str)


def sortable(value) -> tuple:
    """Sort key mixing numbers (numerically), strings and missing values (last)."""
    value = plain(value)
    if not is_present(value):
        return (2, 0.0, "")
    if is_number(value):
        return (0, float(value), "")
    return (1, 0.0, str(value))
