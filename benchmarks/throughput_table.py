"""benchmarks/throughput.tsv: training images/s per (device kind, task, architecture), read by the
auto time limits of training jobs (fashion_rembg.job_resources) and by `python -m fashion_rembg.bill`.

    .venv/bin/python benchmarks/training_throughput.py --device cuda --arch resnet50 --table gpu
        # measures and writes one row (source: measured)
    .venv/bin/python benchmarks/throughput_table.py
        # fills the other architectures of config/paper.yaml and config/config.yaml from the measured row
        # of each device kind, scaled by forward FLOPs (torch.utils.flop_counter at 224²; source: "scaled from ...")

A measured row is never overwritten by a scaled one. Time limits use these numbers × a safety factor.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "benchmarks" / "throughput.tsv"
sys.path.insert(0, str(ROOT / "src"))
from fashion_rembg.atomic import write_csv  # noqa: E402
from fashion_rembg.job_resources import THROUGHPUT_FIELDS  # noqa: E402

# The architectures of config/paper.yaml and config/config.yaml, (task, table name, builder kwargs);
# tests/test_job_resources.py checks that throughput.tsv has their rows (regenerate it after a change).
MODELS = [
    ("classification", "shallow_cnn-w16b3", dict(name="shallow_cnn", width=16, blocks=3)),
    ("classification", "shallow_cnn-w24b2", dict(name="shallow_cnn", width=24, blocks=2)),
    ("classification", "shallow_cnn-w24b3", dict(name="shallow_cnn", width=24, blocks=3)),
    ("classification", "shallow_cnn-w32b2", dict(name="shallow_cnn", width=32, blocks=2)),
    ("classification", "shallow_cnn-w32b3", dict(name="shallow_cnn", width=32, blocks=3)),
    ("classification", "shallow_cnn-w32b4", dict(name="shallow_cnn", width=32, blocks=4)),
    ("classification", "vgg11", dict(name="vgg11")),
    ("classification", "vgg16", dict(name="vgg16")),
    ("classification", "resnet18", dict(name="resnet18")),
    ("classification", "resnet50", dict(name="resnet50")),
    ("segmentation", "unet-resnet18", dict(name="unet", encoder="resnet18")),
    ("segmentation", "unet-resnet34", dict(name="unet", encoder="resnet34")),
]
SIZE = 224


def forward_flops(task: str, kwargs: dict) -> int:
    if task == "classification":
        from fashion_rembg.models.classifiers import build_classifier

        model = build_classifier(num_classes=14, image_size=SIZE, **kwargs)
    else:
        from fashion_rembg.models.segmenters import build_segmenter

        model = build_segmenter(num_classes=14, **kwargs)
    model.eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, 3, SIZE, SIZE))
    return counter.get_total_flops()


def read(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def write(path: Path, rows: list[dict]) -> None:
    rows = sorted(rows, key=lambda r: (r["device_kind"], r["task"], r["arch"]))
    write_csv(path, rows, THROUGHPUT_FIELDS, delimiter="\t")


def put_row(path: Path, row: dict) -> None:
    """Insert or replace the (device_kind, task, arch) row."""
    key = (row["device_kind"], row["task"], row["arch"])
    rows = [r for r in read(path) if (r["device_kind"], r["task"], r["arch"]) != key]
    write(path, rows + [row])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", type=Path, default=TABLE)
    args = parser.parse_args(argv)
    rows = read(args.table)
    measured = {r["device_kind"]: r for r in rows if r["source"].startswith("measured")}
    if not measured:
        sys.exit(f"{args.table}: no measured row to scale from (run training_throughput.py --table first)")
    flops = {name: forward_flops(task, kwargs) for task, name, kwargs in MODELS}
    kept = {(r["device_kind"], r["task"], r["arch"]) for r in rows if r["source"].startswith("measured")}
    for kind, ref in measured.items():
        ref_flops = flops[ref["arch"]] * (SIZE * SIZE) / (int(ref["height"]) * int(ref["width"]))
        for task, name, _ in MODELS:
            if (kind, task, name) in kept:
                continue
            rate = float(ref["images_per_s"]) * ref_flops / flops[name]
            rows = [r for r in rows if (r["device_kind"], r["task"], r["arch"]) != (kind, task, name)]
            rows.append({"device_kind": kind, "task": task, "arch": name, "height": SIZE, "width": SIZE,
                         "images_per_s": f"{rate:.1f}", "device": ref["device"],
                         "source": f"scaled from {ref['arch']} ({ref['images_per_s']}/s measured) by forward "
                                   f"FLOPs {flops[name] / 1e9:.2f} vs {ref_flops / 1e9:.2f} G"})  # fmt: skip
            print(f"{kind:4s} {task:15s} {name:18s} {rate:9.1f} images/s  ({flops[name] / 1e9:.2f} GFLOPs)")
    write(args.table, rows)


if __name__ == "__main__":
    main()
