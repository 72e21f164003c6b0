"""Dry run of the full study (config/paper.yaml) at FashionStyle14 size: how long does Snakemake
take to plan it?

    .venv/bin/python benchmarks/paper_dryrun.py          # fake inputs in a temp dir, time `snakemake -n`

Fakes, in a temporary working directory, what a user would have placed and what the prepare
stage would have written: the raw files (FashionStyle14 folder with 13,126 CSV rows, ModaNet
JSON + PaperDoll LMDB, Fashionpedia JSONs + zips, rembg, torchvision and COCO weights; placeholders,
never read by a dry run) and, newer, the prepared stores (13,126-row FashionStyle14 and 46,781-row
Fashionpedia manifests, Fashionpedia's instance store) and the saliency shard plans. Then times
`snakemake -n` on config/paper.yaml and prints the planned jobs per rule. Goal: < 10 s with
>= 300 training jobs.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
FS14_IMAGES = 13126
FASHIONPEDIA_IMAGES = 45623 + 1158  # official train + val (val becomes the test split)
STYLES = ["conservative", "dressy", "ethnic", "fairy", "feminine", "gal", "girlish", "kireime-casual", "lolita",
          "mode", "natural", "retro", "rock", "street"]  # fmt: skip


def _touch(path: Path, text: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _manifest(path: Path, n: int, labels: list[str] | None) -> None:
    splits = ["train"] * int(n * 0.7) + ["val"] * int(n * 0.1)
    splits += ["test"] * (n - len(splits))
    lines = ["index\tid\tsource\tsplit\tlabel\tlabel_idx\tnote"]
    for i, split in enumerate(splits):
        label = labels[i % len(labels)] if labels else ""
        idx = i % len(labels) if labels else -1
        lines.append(f"{i}\t{i:08x}\tdataset/{label}/{i:08x}.jpg\t{split}\t{label}\t{idx}\t")
    _touch(path, "\n".join(lines) + "\n")


def fake_paper_workdir(workdir: Path, n_images: int = FS14_IMAGES) -> Path:
    """Lay out placeholders for a paper-scale dry run; returns the config file to pass."""
    workdir = Path(workdir)
    config = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    configfile = workdir / "paper.yaml"
    configfile.write_text(yaml.safe_dump(config))
    ds = config["datasets"]
    # Raw files just older than the prepared outputs (not older than the workflow's scripts:
    # without metadata, Snakemake would take a script newer than its output for changed code).
    old = time.time() - 2

    # Raw inputs, as the user would have placed them (contents are never read by a dry run).
    fs14 = workdir / ds["fashionstyle14"]["root"]
    per_split = {"train": int(n_images * 0.7), "val": int(n_images * 0.1)}
    per_split["test"] = n_images - sum(per_split.values())
    k = 0
    for split, count in per_split.items():
        rows = [f"dataset/{STYLES[(k + i) % 14]}/{k + i:08x}.jpg" for i in range(count)]
        k += count
        _touch(fs14 / f"{split}.csv", "\n".join(rows) + "\n")
    (fs14 / "dataset").mkdir(parents=True, exist_ok=True)
    modanet = ds["modanet"]
    ann = modanet["annotations"]["path"] if isinstance(modanet["annotations"], dict) else modanet["annotations"]
    _touch(workdir / ann, "{}")
    _touch(workdir / modanet["lmdb"] / "data.mdb")
    # ... and the ModaNet photos taken out of it, which prepare read (mask_input photo reads them again).
    _touch(workdir / config["downloads"]["extract_dir"] / "modanet_images" / "extracted.json", "{}")
    for key in ("train_annotations", "val_annotations", "train_images", "val_images"):
        raw = ds["fashionpedia"][key]
        _touch(workdir / (raw["path"] if isinstance(raw, dict) else raw))
    _touch(workdir / config["saliency"]["model_home"] / f"{config['saliency']['model']}.onnx")
    sys.path.insert(0, str(ROOT / "src"))
    from fashion_rembg.config import experiment_table
    from fashion_rembg.paths import pretrained_file

    for exp in experiment_table(config).values():
        path = pretrained_file(config, exp)
        if path:
            _touch(workdir / path)
    # The raw-folder listings a real prepare left behind (prepare inputs: older than the store).
    from fashion_rembg.datasets.sources import plan, track_raw_changes

    with contextlib.chdir(workdir):
        track_raw_changes(config, plan(config))
    for path in workdir.rglob("*"):
        os.utime(path, (old, old))

    # Prepared outputs (newer than the raw files) and the saliency shard plans.
    shard = config["saliency"]["shard_size"]
    stores = (
        ("fashionstyle14", n_images, STYLES),
        ("modanet", 52377, None),
        ("fashionpedia", FASHIONPEDIA_IMAGES, None),
    )
    for dataset, n, labels in stores:
        d = workdir / "results" / "data" / dataset
        _manifest(d / "manifest.tsv", n, labels)
        _touch(d / "quarantine.tsv", "source\treason\n")
        task = "classification" if labels else "segmentation"
        _touch(d / "classes.json", json.dumps({"task": task, "classes": labels or ["background", "bag"]}))
        names = ["images.npy", "classmaps.npy"]
        if dataset == "fashionpedia":  # the instance store, written by the same prepare job
            names += ["instances.jsonl", "instances.index.npy", "instances.meta.json"]
        for name in names:
            _touch(d / name)
        plan = {"n": n, "shards": [[a, min(a + shard, n)] for a in range(0, n, shard)]}
        _touch(workdir / "results" / "saliency" / dataset / "shards.json", json.dumps(plan))
    return configfile


def dry_run(workdir: Path, configfile: Path) -> tuple[float, dict[str, int], str]:
    cmd = [sys.executable, "-m", "snakemake", "-n", "--snakefile", str(ROOT / "Snakefile"), "--directory",
           str(workdir), "--configfile", str(configfile), "--cores", "8"]  # fmt: skip
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir, env=env)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # CPU seconds too: on a shared machine the wall time also counts other people's load.
    dry_run.cpu_seconds = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise RuntimeError(f"snakemake -n failed:\n{out[-6000:]}")
    table = out.split("Job stats:")[1] if "Job stats:" in out else ""
    jobs = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}
    return seconds, jobs, out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=FS14_IMAGES)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        configfile = fake_paper_workdir(Path(tmp), args.images)
        seconds, jobs, _ = dry_run(Path(tmp), configfile)
    for rule, count in sorted(jobs.items(), key=lambda kv: -kv[1]):
        print(f"{rule:30s} {count:6d}")
    train = sum(jobs.get(f"train_{task}", 0) for task in ("classifier", "segmenter", "instance"))
    print(f"snakemake -n on config/paper.yaml ({args.images} FashionStyle14 images): {seconds:.2f} s wall, "
          f"{dry_run.cpu_seconds:.2f} s CPU for {jobs.get('total', 0)} jobs, {train} training jobs "
          f"(goal < 10 s with >= 300); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return {"seconds": seconds, "cpu_seconds": dry_run.cpu_seconds, "jobs": jobs}


if __name__ == "__main__":
    main()
