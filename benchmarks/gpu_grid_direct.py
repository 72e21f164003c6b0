"""Demo classification grid on CUDA, without Snakemake (for GPU machines that lack it).

    python benchmarks/gpu_grid_direct.py --config config/config.yaml --workdir DIR --out OUT

DIR must hold the demo's prepared stores (results/data/..., results/rembg/...) from a CPU run.
Runs every (classification experiment, seed) of the config through the same package functions the
`train_classifier` / `evaluate_classifier` rules call, samples nvidia-smi every 0.5 s and prints per
run the device, wall time and training images/s, plus the GPU utilisation.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from pathlib import Path

import yaml


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=Path("config/config.yaml"))
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    from fashion_rembg.config import evaluation_conditions, experiment_table, seeds
    from fashion_rembg.paths import condition_images
    from fashion_rembg.training.classification import evaluate_classifier, train_classifier

    config = yaml.safe_load(args.config.read_text())
    os.chdir(args.workdir)
    args.out.mkdir(parents=True, exist_ok=True)
    smi = subprocess.Popen(["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits",
                            "-lms", "500"], stdout=open(args.out / "smi.csv", "w"), stderr=subprocess.DEVNULL)
    rows = []
    start = time.perf_counter()
    for exp_id, exp in experiment_table(config).items():
        if exp["task"] != "classification":
            continue
        data = Path("results/data") / exp["dataset"]
        images = condition_images(exp["dataset"], exp)
        if not Path(images).is_file():
            print(f"skip {exp_id}: {images} not carried")
            continue
        for seed in exp.get("seeds") or seeds(config, "classification"):
            run = args.out / "runs" / exp_id / f"seed-{seed}"
            t0 = time.perf_counter()
            try:
                train_classifier(images=images, manifest=data / "manifest.tsv", classes=data / "classes.json",
                                 model_out=run / "model.pt", history_out=run / "history.csv", experiment=exp,
                                 seed=seed, threads=4, checkpoint_dir=run / "ckpt",
                                 torch_home=Path("resources/torch-demo"))
            except Exception as err:  # e.g. stand-in ImageNet weights not carried: record and go on
                print(f"skip {exp_id}/seed-{seed}: {type(err).__name__}: {err}", flush=True)
                continue
            t1 = time.perf_counter()
            conds = [dict(c, images=condition_images(exp["dataset"], c)) for c in evaluation_conditions(config, exp)]
            conds = [c for c in conds if Path(c["images"]).is_file()]
            result = evaluate_classifier(model=run / "model.pt", manifest=data / "manifest.tsv",
                                         classes=data / "classes.json", conditions=conds,
                                         metrics_out=run / "metrics.json", predictions_out=run / "predictions.npz",
                                         experiment=exp, seed=seed, threads=4)
            n_train = sum(1 for line in (data / "manifest.tsv").read_text().splitlines()[1:] if "\ttrain\t" in line)
            row = {"run": f"{exp_id}/seed-{seed}", "device": result.get("device"), "train_s": round(t1 - t0, 2),
                   "eval_s": round(time.perf_counter() - t1, 2), "train_images_per_s": round(
                       n_train * int(exp["epochs"]) / (t1 - t0), 1), "top1": result["metrics"]["top1"]}
            rows.append(row)
            print(json.dumps(row), flush=True)
    total = time.perf_counter() - start
    smi.terminate()
    util = [float(line.split(",")[0]) for line in (args.out / "smi.csv").read_text().splitlines() if line.strip()]
    busy = [u for u in util if u > 0]
    summary = {"runs": len(rows), "total_s": round(total, 1),
               "gpu_util_mean": round(statistics.mean(util), 1) if util else None,
               "gpu_util_mean_busy": round(statistics.mean(busy), 1) if busy else None, "rows": rows}
    (args.out / "gpu_grid.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}))


if __name__ == "__main__":
    main()
