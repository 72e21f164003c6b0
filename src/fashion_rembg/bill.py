"""Know the bill before you submit: jobs per heavy rule, expected GPU-hours and requested time limits.

    python -m fashion_rembg.bill --configfile config/paper.yaml

Training times come from benchmarks/throughput.tsv (job_resources.training_estimate): expected =
epochs × images ÷ images/s; the limit each job declares adds `compute.runtime_safety` and
`compute.runtime_overhead`. Datasets not yet prepared count at their published size.
"""
from __future__ import annotations

import argparse
import math
from collections import defaultdict
from pathlib import Path

import yaml

from .config import experiment_runs, experiment_table
from .job_resources import task_compute, training_estimate
from .paths import store

ROOT = Path(__file__).resolve().parents[2]


def load_config(path: Path, schema: Path) -> dict:
    from snakemake.utils import validate

    config = yaml.safe_load(path.read_text())
    validate(config, str(schema))  # fills the schema's defaults, as the workflow does
    return config


def bill(config: dict, table: Path, workdir: Path = Path(".")) -> dict:
    """Per rule: jobs, GPUs per job, expected hours and requested limit hours (× GPUs: GPU-hours)."""
    experiments = experiment_table(config)
    rules: dict[str, dict] = defaultdict(lambda: {"jobs": 0, "gpu": 0, "expected_h": 0.0, "limit_h": 0.0,
                                                  "unknown": set()})  # fmt: skip
    rule_names = {"classification": "classifier", "segmentation": "segmenter", "instance": "instance"}
    masks: set[tuple[str, str]] = set()
    for task, exp_id, _seed in experiment_runs(config):
        exp = experiments[exp_id]
        dataset = config[task]["dataset"]
        merged = task_compute(config["compute"], task)
        est = training_estimate(config["compute"], task, exp, config["datasets"][dataset]["store_size"], dataset,
                                workdir / store(dataset, "manifest.tsv"), table)  # fmt: skip
        train = rules[f"train_{rule_names[task]}"]
        train["jobs"] += 1
        train["gpu"] = merged["gpu"]
        train["limit_h"] += (est["limit_min"] + config["compute"]["eval_runtime"]) / 60  # then its tests
        if est["expected_min"] is None:
            train["unknown"].add(f"{est['arch']} ({est['how']})")
        else:
            train["expected_h"] += est["expected_min"] / 60
        if exp.get("variant") == "rembg":
            masks.add((dataset, exp.get("sod") or config["saliency"]["model"]))
    saliency = config["saliency"]
    for dataset, _sod in sorted(masks):
        from .job_resources import epoch_images  # noqa: PLC0415

        images, _ = epoch_images(dataset, workdir / store(dataset, "manifest.tsv"))
        shards = math.ceil(images / saliency["shard_size"]) if images else 1
        shard = rules["saliency_shard"]
        shard["jobs"] += shards
        shard["gpu"] = saliency["gpu"]
        shard["limit_h"] += shards * saliency["runtime"] / 60
    return dict(rules)


def render(rules: dict) -> str:
    lines = [f"{'rule':22s} {'jobs':>6s} {'GPU/job':>7s} {'expected GPU-h':>14s} {'requested GPU-h':>15s}"]
    total_expected = total_limit = 0.0
    for name, row in rules.items():
        gpus = max(row["gpu"], 0)
        expected = row["expected_h"] * gpus
        limit = row["limit_h"] * gpus
        total_expected += expected
        total_limit += limit
        shown = f"{expected:14.1f}" if name.startswith("train_") else f"{'-':>14s}"
        lines.append(f"{name:22s} {row['jobs']:6d} {gpus:7d} {shown} {limit:15.1f}")
        for unknown in sorted(row["unknown"]):
            lines.append(f"  no throughput row, flat limit: {unknown}")
    lines.append(f"{'total':22s} {sum(r['jobs'] for r in rules.values()):6d} {'':7s} {total_expected:14.1f} "
                 f"{total_limit:15.1f}")  # fmt: skip
    lines.append("expected: training at the table's images/s (benchmarks/throughput.tsv); requested: the time "
                 "limits the jobs declare (× runtime_safety + runtime_overhead, + eval_runtime for the tests; "
                 "mask jobs: flat)")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configfile", type=Path, default=ROOT / "config" / "config.yaml")
    parser.add_argument("--schema", type=Path, default=ROOT / "workflow" / "schemas" / "config.schema.yaml")
    parser.add_argument("--table", type=Path, default=ROOT / "benchmarks" / "throughput.tsv")
    parser.add_argument("--directory", type=Path, default=Path("."), help="working directory of the run")
    args = parser.parse_args(argv)
    config = load_config(args.configfile, args.schema)
    print(f"{args.configfile}: the bill of the GPU-heavy rules")
    print(render(bill(config, args.table, args.directory)))


if __name__ == "__main__":
    main()
