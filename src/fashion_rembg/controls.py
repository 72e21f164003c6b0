"""Known-answer controls: variants of the FashionStyle14 look-alike whose generator knobs fix the answer.

The demo generator knows the truth: ``clutter`` (how much the background distracts) and
``bg_label_correlation`` (how often the background carries the style). Each control set is a demo
dataset ``control-<name>`` generated side by side with the main demo (``<demo.out_dir>/controls/<name>``)
with some knobs overridden, or the main demo data itself when it overrides none. Each is compared
rembg vs original with the shallow scratch CNN of ``classification.grid``, and the comparison must
land where its ``expected`` says:

* ``rembg_better``   (mechanism: heavy clutter, no correlation) — Δ > 0, CI above 0;
* ``original_better`` (shortcut: the background carries the label) — Δ < 0, CI below 0;
* ``no_difference``  (null: plain backgrounds) — the CI contains 0; judged with ``compare: oracle``
  (the true masks), since imperfect rembg masks also cut into the figure — a real, measured cost;
* ``dose``           only a level of the dose–response (Δ against clutter; sets with no correlation).

This module is imported while Snakemake builds the DAG: no torch.
"""

from __future__ import annotations

from typing import Any

from .choices import FILLS
from .demo import demo_settings
from .errors import ConfigError

PREFIX = "control-"
EXPECTATIONS = ("rembg_better", "original_better", "no_difference", "dose")
# What a set's verdict compares with the original: rembg masks, or the true masks (oracle), which
# remove exactly the background and nothing else: the clean null. The dose-response always uses rembg.
COMPARED = ("rembg", "oracle")
KNOBS = ("clutter", "bg_label_correlation")
MAIN_DATASET = "fashionstyle14"


def enabled(config: dict) -> bool:
    controls = config.get("controls") or {}
    classification = config.get("classification") or {}
    return bool(controls.get("enabled")) and classification.get("enabled", True) and (
        (config.get("demo") or {}).get("enabled", False)
    )


def control_sets(config: dict) -> dict[str, dict[str, Any]]:
    """``{name: {dataset, expected, compare, fill, clutter, bg_label_correlation}}`` (knobs resolved
    against demo; fill None: the runs use saliency.fill)."""
    if not enabled(config):
        return {}
    demo = config["demo"]
    if (config.get("classification") or {}).get("dataset", MAIN_DATASET) != MAIN_DATASET:
        raise ConfigError("controls: need classification.dataset: fashionstyle14 (the demo look-alike)")
    out = {}
    for name, entry in (config["controls"].get("sets") or {}).items():
        where = f"controls.sets.{name}"
        entry = entry or {}
        if entry.get("expected") not in EXPECTATIONS:
            raise ConfigError(f"{where}.expected: {entry.get('expected')!r} is not one of {', '.join(EXPECTATIONS)}")
        compare = entry.get("compare", "rembg")
        if compare not in COMPARED:
            raise ConfigError(f"{where}.compare: {compare!r} is not one of {', '.join(COMPARED)}")
        fill = entry.get("fill")
        if fill is not None and fill not in FILLS:
            raise ConfigError(f"{where}.fill: {fill!r} is not one of {', '.join(FILLS)}")
        knobs = {k: float(entry.get(k, demo.get(k, 0.0))) for k in KNOBS}
        own = any(k in entry for k in KNOBS)
        out[name] = {"dataset": f"{PREFIX}{name}" if own else MAIN_DATASET, "expected": entry["expected"],
                     "compare": compare, "fill": fill, **knobs}
    levels = dose_levels(out)
    if len({s["clutter"] for s in levels.values()}) < 3:
        raise ConfigError(
            "controls.sets: the dose–response needs >= 3 clutter levels among the sets with "
            f"bg_label_correlation 0, got {sorted({s['clutter'] for s in levels.values()})}"
        )
    return out


def dose_levels(sets: dict[str, dict]) -> dict[str, dict]:
    """Sets on the dose–response curve (background carries no label), by clutter."""
    chosen = {n: s for n, s in sets.items() if s["bg_label_correlation"] == 0.0}
    return dict(sorted(chosen.items(), key=lambda kv: kv[1]["clutter"]))


def control_datasets(config: dict) -> dict[str, dict[str, Any]]:
    """``datasets`` entries of the generated control sets (same store settings as fashionstyle14)."""
    base = (config.get("datasets") or {}).get(MAIN_DATASET) or {}
    out = {}
    for name, spec in control_sets(config).items():
        if spec["dataset"] == MAIN_DATASET:
            continue
        folder = control_dir(config, name)
        entry = {k: v for k, v in base.items() if k not in ("root", "truth", "archive")}
        out[spec["dataset"]] = entry | {
            "root": f"{folder}/FashionStyle14_v1",
            "truth": f"{folder}/truth/fashionstyle14",
            "reader": MAIN_DATASET,
        }
    return out


def control_plans(config: dict) -> dict:
    """Source plans of the generated control sets: their split CSVs, read like FashionStyle14's."""
    from .datasets.sources import DatasetPlan

    plans = {}
    for name, entry in control_datasets(config).items():
        plan = DatasetPlan(name)
        plan.inputs[MAIN_DATASET] = [f"{entry['root']}/{split}.csv" for split in ("train", "val", "test")]
        plans[name] = plan
    return plans


def control_dir(config: dict, name: str) -> str:
    return f"{config['demo']['out_dir']}/controls/{name}"


def generator_settings(config: dict, name: str) -> dict[str, Any]:
    """Keyword arguments of ``generate_demo`` for one control set: the demo's, knobs overridden."""
    spec = control_sets(config)[name]
    return demo_settings(config["demo"]) | {k: spec[k] for k in KNOBS} | {"only_fashionstyle14": True}


def experiment_rows(config: dict) -> list[tuple[str, str, dict[str, Any]]]:
    """``(where, dataset, overrides)``: the shallow scratch CNN, original and rembg, per control set."""
    rows = []
    for name, spec in control_sets(config).items():
        for variant in variants(spec):
            rows.append(
                (
                    f"controls.sets.{name}",
                    spec["dataset"],
                    {"arch": "shallow_cnn", "init": "scratch", "variant": variant, "sod": None,
                     # the set's fill only for the compared runs: rembg runs feed the dose-response,
                     # whose levels must differ in clutter alone
                     "fill": spec["fill"] if variant == spec["compare"] else None},
                )
            )
    return rows


def variants(spec: dict) -> list[str]:
    """The runs of a control set: original and rembg, plus oracle when its verdict compares that."""
    return ["original", "rembg"] + (["oracle"] if spec["compare"] == "oracle" else [])
