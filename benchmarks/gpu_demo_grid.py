"""Run the demo's classification grid on CUDA once and record throughput and GPU utilisation.

    .venv/bin/python benchmarks/gpu_demo_grid.py [--out DIR]     # on a machine with a CUDA GPU

Writes a copy of config/config.yaml with segmentation off and ``compute.gpu: 1`` into a fresh
working directory, samples ``nvidia-smi`` every 0.5 s while ``snakemake --resources gpu=1`` runs the
whole classification DAG (demo data, stand-in saliency model, masks, 17 training + 17 evaluation
jobs), then prints per run the device recorded in metrics.json, the training images/s logged per
epoch and the job's wall time, and the GPU utilisation (mean over all samples and over busy ones).
Figures also go to ``<out>/gpu_demo_grid.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _gpu_name() -> str:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True
        )
    except FileNotFoundError:
        return "none"
    return out.stdout.strip()


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ROOT / "benchmarks" / "out" / "gpu")))
    parser.add_argument("--cores", type=int, default=os.cpu_count())
    parser.add_argument("--threads-per-job", type=int, default=4)
    parser.add_argument("--smoke", action="store_true", help="tiny demo, 1 epoch: checks this script on any machine")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="gpu-demo-"))
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["segmentation"]["enabled"] = False
    config["compute"].update(gpu=1, threads_per_job=args.threads_per_job)
    if args.smoke:
        config["demo"].update(fs14_per_class=8, sod_train=40)
        config["saliency"]["standin"]["epochs"] = 2
        config["datasets"]["fashionstyle14"]["store_size"] = [48, 32]
        config["classification"]["grid"]["epochs"] = 1
        config["classification"]["include"] = [{"variant": "original", "arch": "resnet18", "init": "imagenet",
                                                 "augment": "crop_flip", "epochs": 1, "seeds": [0]}]  # fmt: skip
    (work / "gpu.yaml").write_text(yaml.safe_dump(config))

    smi_log = args.out / "nvidia_smi.csv"
    smi = ["nvidia-smi", "--query-gpu=timestamp,utilization.gpu,memory.used", "--format=csv,noheader,nounits",
           "-lms", "500"]  # fmt: skip
    try:
        sampler = subprocess.Popen(smi, stdout=open(smi_log, "w"), stderr=subprocess.DEVNULL)
    except FileNotFoundError:  # no NVIDIA driver: still run (CPU), without utilisation figures
        print("nvidia-smi not found: no GPU utilisation samples")
        sampler = subprocess.Popen(["sleep", "infinity"])
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(work),
           "--configfile", str(work / "gpu.yaml"), "--cores", str(args.cores), "--resources", "gpu=1"]  # fmt: skip
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=work)
    wall = time.perf_counter() - start
    sampler.terminate()
    sampler.wait()
    (args.out / "snakemake.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        print(proc.stderr[-4000:])
        sys.exit(f"snakemake failed (log: {args.out / 'snakemake.log'}, workdir {work})")

    runs = []
    for metrics in sorted((work / "results" / "runs" / "classification").glob("*/seed-*/metrics.json")):
        exp, seed = metrics.parent.parent.name, metrics.parent.name
        log = (work / "results" / "logs" / "train_classifier" / exp / f"{seed}.log").read_text()
        speeds = [float(v) for v in re.findall(r"train ([0-9.]+) img/s", log)]
        bench = work / "results" / "benchmarks" / "train_classifier" / exp / f"{seed}.tsv"
        seconds = float(bench.read_text().splitlines()[1].split("\t")[0])
        data = json.loads(metrics.read_text())
        runs.append({"run": f"{exp}/{seed}", "device": data["device"], "top1": data["metrics"]["top1"],
                     "epochs": len(speeds), "img_per_s_median": statistics.median(speeds) if speeds else None,
                     "train_job_s": seconds})  # fmt: skip
    util, mem = [], []
    for line in smi_log.read_text().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3 and parts[1].isdigit():
            util.append(int(parts[1]))
            mem.append(int(parts[2]))
    busy = [u for u in util if u > 0]
    summary = {
        "gpu": _gpu_name(),
        "wall_s": wall, "runs": runs,
        "gpu_util_mean": statistics.mean(util) if util else None,
        "gpu_util_mean_busy": statistics.mean(busy) if busy else None,
        "gpu_mem_max_mib": max(mem) if mem else None, "samples": len(util),
    }  # fmt: skip
    print(f"{'run':78s} {'device':6s} {'epochs':>6s} {'img/s':>9s} {'job s':>7s}")
    for r in runs:
        speed = f"{r['img_per_s_median']:9.0f}" if r["img_per_s_median"] else "        –"
        print(f"{r['run']:78s} {r['device']:6s} {r['epochs']:6d} {speed} {r['train_job_s']:7.1f}")
    print(
        f"GPU {summary['gpu']}: whole DAG {wall:.0f} s; utilisation mean {summary['gpu_util_mean']}% "
        f"(busy samples {summary['gpu_util_mean_busy']}%), max memory {summary['gpu_mem_max_mib']} MiB"
    )
    (args.out / "gpu_demo_grid.json").write_text(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
