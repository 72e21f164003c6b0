"""Peak RSS of the Fashionpedia prepare stage (image store + class maps + instance store) at two dataset sizes.

    .venv/bin/python benchmarks/prepare_memory.py                      # 500 and 2,000 train images
    .venv/bin/python benchmarks/prepare_memory.py --sizes 500 8000 --workers 4

Generates Fashionpedia look-alikes (``fashion_rembg.demo.fashionpedia``: the real raw format, COCO JSON
with polygons and RLE, images in zips) with N train images and N/10 val images, then runs each case
in a fresh process and reads its peak RSS (``VmHWM``; worker processes apart, ``RUSAGE_CHILDREN``):

* ``imports``: Python + the prepare modules imported, nothing else (the floor, same run);
* ``annotations``: the floor + both annotation JSONs loaded, checked and indexed per image the way
  ``prepare_fashionpedia`` keeps them (the part that must grow with the dataset);
* ``prepare-1``: ``prepare_fashionpedia(..., instances=True)``, serial;
* ``prepare-N``: the same with N decode worker processes (``--workers``).

Goal: peak RSS of ``prepare-*`` roughly flat as the dataset grows (what grows is the annotation index,
shown by ``annotations``); the store and instance store are streamed to disk.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out" / "prepare_memory"


def peak_rss_mib() -> tuple[float, float]:
    """(this process's peak RSS, the largest finished child's) in MiB."""
    status = Path("/proc/self/status")
    own = None
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                own = int(line.split()[1]) / 1024
    scale = 1 / 1024 if sys.platform != "darwin" else 1 / 2**20  # ru_maxrss: KiB on Linux, bytes on macOS
    if own is None:
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    return own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * scale


def raw_paths(raw: Path) -> dict:
    return {"train_annotations": raw / "instances_attributes_train2020.json",
            "val_annotations": raw / "instances_attributes_val2020.json",
            "train_images": raw / "train2020.zip", "val_images": raw / "val_test2020.zip"}


def run_case(raw: str, out: str, case: str, store: tuple[int, int]) -> None:
    """Child process: one case, then print a JSON line with its figures."""
    from fashion_rembg.datasets import fashionpedia
    from fashion_rembg.datasets.coco import checked_images, compact_annotations

    paths = raw_paths(Path(raw))
    started = time.perf_counter()
    result: dict = {"case": case}
    if case == "annotations":
        kept = []
        for official, (json_key, _, _) in fashionpedia.OFFICIAL.items():
            coco = fashionpedia.load_annotations(paths[json_key], official)
            kept.append((compact_annotations(coco), checked_images(coco, [])))
            del coco
        result["images"] = sum(len(images) for _, images in kept)
    elif case.startswith("prepare-"):
        summary = fashionpedia.prepare_fashionpedia(paths, out, store, instances=True, workers=int(case.split("-")[1]))
        result["images"] = summary["images"]
        result["instances"] = summary["instances"]["instances"]
        result["store_mib"] = sum(f.stat().st_size for f in Path(out).iterdir()) / 2**20
    result["seconds"] = time.perf_counter() - started
    result["rss_mib"], result["worker_rss_mib"] = peak_rss_mib()
    print(json.dumps(result))


def measure(raw: Path, case: str, store: tuple[int, int]) -> dict:
    out = OUT / "store"
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT / "src"))
    done = subprocess.run([sys.executable, __file__, "--case", str(raw), str(out), case, f"{store[0]}x{store[1]}"],
                          capture_output=True, text=True, env=env)  # fmt: skip
    if done.returncode != 0:
        sys.exit(f"case {case} on {raw} failed:\n{done.stderr[-3000:]}")
    shutil.rmtree(out, ignore_errors=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def generate(n: int, size: tuple[int, int]) -> Path:
    from fashion_rembg.demo.fashionpedia import generate_fashionpedia

    raw = OUT / f"raw-{n}-{size[0]}x{size[1]}"
    if not (raw / "demo_info.json").is_file():
        started = time.perf_counter()
        generate_fashionpedia(raw, train=n, val=max(1, n // 10), test_unlabelled=0, size=size)
        print(f"  look-alike with {n} + {max(1, n // 10)} images generated in {time.perf_counter() - started:.0f} s",
              flush=True)  # fmt: skip
    return raw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs=2, default=[500, 2000], help="train images: small, large")
    parser.add_argument("--workers", type=int, default=2, help="decode workers of the parallel case")
    parser.add_argument("--size", default="128x192", help="look-alike photo W×H at most (the demo's)")
    parser.add_argument("--store", default="384x256", help="store H×W (config/paper.yaml's Fashionpedia size)")
    parser.add_argument("--case", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        raw, out, case, store = args.case
        run_case(raw, out, case, tuple(int(v) for v in store.split("x")))
        return
    size = tuple(int(v) for v in args.size.split("x"))
    store = tuple(int(v) for v in args.store.split("x"))
    cases = ["imports", "annotations", "prepare-1", f"prepare-{args.workers}"]
    print(f"prepare_fashionpedia peak RSS: look-alike ≤ {size[0]}×{size[1]}, store {store[0]}×{store[1]}, "
          f"instances on; load average {os.getloadavg()[0]:.1f}", flush=True)
    results = {}
    for n in args.sizes:
        raw = generate(n, size)
        for case in cases:
            r = results[(n, case)] = measure(raw, case, store)
            extra = ""
            if case.startswith("prepare-"):
                extra = (f"  {r['images']} images, {r['instances']} instances, store {r['store_mib']:.0f} MiB, "
                         f"{r['images'] / r['seconds']:.0f} images/s")
                if case != "prepare-1":
                    extra += f", largest worker {r['worker_rss_mib']:.0f} MiB"
            print(f"  {n:6d} {case:12s} peak RSS {r['rss_mib']:7.1f} MiB{extra}", flush=True)
    small, large = args.sizes
    print(f"peak RSS large/small (train images ×{large / small:.1f}):")
    for case in cases:
        a, b = results[(small, case)]["rss_mib"], results[(large, case)]["rss_mib"]
        print(f"  {case:12s} {b / a:.2f}  (+{b - a:.1f} MiB)")
    floor = results[(large, "imports")]["rss_mib"]
    for n in args.sizes:
        prep, ann = results[(n, "prepare-1")]["rss_mib"], results[(n, "annotations")]["rss_mib"]
        print(f"  {n:6d}: prepare-1 above the floor {prep - floor:.1f} MiB, of which the annotation index "
              f"{ann - floor:.1f} MiB")
    print(f"[load average {os.getloadavg()[0]:.1f}]")


if __name__ == "__main__":
    main()
