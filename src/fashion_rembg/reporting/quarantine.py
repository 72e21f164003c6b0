"""How many raw rows each prepared store kept and quarantined, for the report.

Reasons name files, lines and ids; they are grouped into kinds by blanking quoted text and numbers
so the table stays short. The full list is each store's quarantine.tsv.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pandas as pd

from ..atomic import atomic_file

COLUMNS = ["dataset", "kept", "quarantined", "quarantined_pct", "top_reasons", "quarantine_file"]
_SPECIFIC = re.compile(r"'[^']*'|\"[^\"]*\"|\S*/\S*|\d[\d,.]*")


def reason_kind(reason: str) -> str:
    """'train.csv:12: unknown style 'x'' → 'train.csv:…: unknown style …' (files, ids, numbers blanked)."""
    return " ".join(_SPECIFIC.sub("…", str(reason)).split())


def quarantine_rows(stores: dict[str, Path], top: int = 3) -> list[dict]:
    rows = []
    for dataset, store in sorted(stores.items()):
        store = Path(store)
        kept = len(pd.read_csv(store / "manifest.tsv", sep="\t", usecols=["index"]))
        reasons = pd.read_csv(store / "quarantine.tsv", sep="\t", keep_default_na=False)["reason"].tolist()
        kinds = Counter(reason_kind(r) for r in reasons).most_common(top)
        total = kept + len(reasons)
        rows.append({"dataset": dataset, "kept": kept, "quarantined": len(reasons),
                     "quarantined_pct": round(100.0 * len(reasons) / total, 2) if total else 0.0,
                     "top_reasons": "; ".join(f"{n}× {k}" for k, n in kinds),
                     "quarantine_file": str(store / "quarantine.tsv")})  # fmt: skip
    return rows


def instance_drop_lines(stores: dict[str, Path]) -> list[str]:
    """Markdown of the instance stores' counts (instances.meta.json, datasets.instances): instances
    kept, crowd regions, crowd-only images and the annotations dropped from kept images, by reason.
    Empty when no store has an instance store (the table then stays as before)."""
    metas = {d: Path(s) / "instances.meta.json" for d, s in sorted(stores.items())}
    metas = {d: json.loads(p.read_text()) for d, p in metas.items() if p.is_file()}
    if not metas:
        return []
    lines = ["", "### Instance stores", "",
             "Annotations of kept images that did not become training/evaluation instances, by reason "
             "(an image with none left is quarantined above).", "",
             "| dataset | images | instances | crowd regions | crowd-only images | dropped annotations |",
             "|---|---:|---:|---:|---:|---|"]  # fmt: skip
    for dataset, meta in metas.items():
        dropped = "; ".join(f"{n}× {reason}" for reason, n in sorted(meta["dropped"].items())).replace("|", "\\|")
        lines.append(f"| {dataset} | {meta['images']} | {meta['instances']} | {meta['crowd']} | "
                     f"{meta['crowd_only_images']} | {dropped or '–'} |")  # fmt: skip
    return lines


def write_quarantine_tables(stores: dict[str, Path], csv_path: Path, md_path: Path) -> list[dict]:
    rows = quarantine_rows(stores)
    with atomic_file(Path(csv_path)) as tmp:
        pd.DataFrame(rows, columns=COLUMNS).to_csv(tmp, index=False, lineterminator="\n")
    lines = ["## Quarantined raw data", "",
             "Rows of the raw data that were not used, and why (full list: each store's quarantine.tsv).", "",
             "| dataset | kept | quarantined | % | most common reasons |", "|---|---:|---:|---:|---|"]
    for r in rows:
        reasons = r["top_reasons"].replace("|", "\\|") or "–"
        lines.append(f"| {r['dataset']} | {r['kept']} | {r['quarantined']} | {r['quarantined_pct']:.2f} | {reasons} |")
    lines += instance_drop_lines(stores)
    with atomic_file(Path(md_path)) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return rows
