"""Prepare throughput and peak memory on a generated FashionStyle14-sized dataset.

Generates a look-alike FashionStyle14_v1/ folder (14 styles, header-less split CSVs, JPEGs) with
13,126 images and a quarter-sized copy, then runs `prepare_fashionstyle14` in a fresh process per
case and reports images/s and peak RSS (the parent and, separately, the largest worker):

* `stream-1`: the streaming store writer, one process (serial path);
* `stream-N`: the same with N decode workers (`--workers`, default: all cores);
* `memmap-1`: baseline in the same run, the previous writer (np.memmap rows + a compaction copy),
  whose resident pages grow with the dataset.

Peak RSS of the streaming writer must not grow with the dataset size (ratio large/small ≈ 1).

    .venv/bin/python benchmarks/prepare_throughput.py [--images 13126] [--workers N] [--side 300x450]
"""
from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
STYLES = ("conservative", "dressy", "ethnic", "fairy", "feminine", "gal", "girlish",
          "kireime-casual", "lolita", "mode", "natural", "retro", "rock", "street")


def generate(root: Path, n_images: int, size: tuple[int, int], seed: int = 0) -> None:
    """FashionStyle14_v1/dataset/<style>/<32hex>.jpg + train/val/test.csv (70/10/20)."""
    if (root / "test.csv").is_file() and sum(1 for _ in (root / "dataset").rglob("*.jpg")) == n_images:
        return
    shutil.rmtree(root, ignore_errors=True)
    rng = np.random.default_rng(seed)
    blobs = []  # 64 distinct photos-like JPEGs (smooth gradients + noise), reused: decoding cost is per file
    for _ in range(64):
        w, h = size
        base = np.linspace(0, 1, h)[:, None, None] * rng.uniform(40, 200, 3) + rng.uniform(0, 55, 3)
        img = np.clip(base + rng.normal(0, 18, (h, w, 3)), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=90)
        blobs.append(buf.getvalue())
    lines = {"train": [], "val": [], "test": []}
    for i in range(n_images):
        style = STYLES[i % len(STYLES)]
        name = f"{rng.integers(0, 2**63):016x}{i:016x}.jpg"
        path = root / "dataset" / style / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(blobs[i % len(blobs)])
        r = i % 10
        lines["train" if r < 7 else "val" if r < 8 else "test"].append(f"dataset/{style}/{name}")
    for split, rows in lines.items():
        (root / f"{split}.csv").write_text("\n".join(rows) + "\n")


class MemmapStoreWriter:
    """The previous StoreWriter (baseline): rows into a memmap, then a compaction copy."""

    def __init__(self, out_dir, capacity, arrays):
        self.out_dir, self.shapes = Path(out_dir), arrays
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.tmp = {name: np.lib.format.open_memmap(self.out_dir / f".{name}.partial.npy", mode="w+",
                                                    dtype=np.uint8, shape=(max(capacity, 1), *shape))
                    for name, shape in arrays.items()}
        self.kept = []

    def put(self, slot, **rows):
        for name, row in rows.items():
            self.tmp[name][slot] = row
        self.kept.append(slot)

    def finish(self):
        kept = sorted(self.kept)
        for name, shape in self.shapes.items():
            out = np.lib.format.open_memmap(self.out_dir / f".{name}.c.npy", mode="w+", dtype=np.uint8,
                                            shape=(len(kept), *shape))
            for start in range(0, len(kept), 256):
                out[start:start + 256] = self.tmp[name][kept[start:start + 256]]
            out.flush()
            del out
            os.replace(self.out_dir / f".{name}.c.npy", self.out_dir / f"{name}.npy")
            del self.tmp[name]
            (self.out_dir / f".{name}.partial.npy").unlink()
        return len(kept)

    def abort(self):
        pass


def run_case(root: str, out: str, workers: int, store: int, writer: str) -> None:
    """Child process: prepare once, print JSON with time and peak RSS."""
    from fashion_rembg.datasets import fashionstyle14

    if writer == "memmap":
        fashionstyle14.StoreWriter = MemmapStoreWriter
    start = time.perf_counter()
    summary = fashionstyle14.prepare_fashionstyle14(root, out, (store, store), workers=workers)
    seconds = time.perf_counter() - start
    kib = 1 if sys.platform != "darwin" else 1 / 1024
    print(json.dumps({"images": summary["images"], "seconds": seconds,
                      "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * kib / 1024,
                      "worker_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * kib / 1024}))


def measure(root: Path, out: Path, workers: int, store: int, writer: str) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, __file__, "--case", str(root), str(out), str(workers), str(store), writer],
                          capture_output=True, text=True, env=env, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    shutil.rmtree(out, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=13126, help="large dataset size (FashionStyle14: 13,126)")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--side", default="300x450", help="generated JPEG size WxH")
    parser.add_argument("--store", type=int, default=224, help="store resolution (square)")
    parser.add_argument("--dir", default=str(ROOT / "benchmarks" / "out" / "prepare_throughput"))
    parser.add_argument("--case", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        root, out, workers, store, writer = args.case
        run_case(root, out, int(workers), int(store), writer)
        return
    base = Path(args.dir)
    size = tuple(int(v) for v in args.side.split("x"))
    sizes = {"small": args.images // 4, "large": args.images}
    print(f"prepare_fashionstyle14 throughput: JPEG {args.side} → store {args.store}², {os.cpu_count()} CPUs, "
          f"workers={args.workers}")
    results = {}
    for label, n in sizes.items():
        root = base / f"{label}-{n}" / "FashionStyle14_v1"
        started = time.perf_counter()
        generate(root, n, size)
        print(f"  fixture {label}: {n} images ready ({time.perf_counter() - started:.0f} s)")
        for case, (workers, writer) in {"memmap-1": (1, "memmap"), "stream-1": (1, "stream"),
                                        f"stream-{args.workers}": (args.workers, "stream")}.items():
            r = measure(root, base / "store", workers, args.store, writer)
            results[(label, case)] = r
            print(f"  {label:5s} {n:6d} {case:10s} {r['images'] / r['seconds']:8.1f} img/s  "
                  f"peak RSS {r['rss_mib']:7.1f} MiB  (largest worker {r['worker_rss_mib']:6.1f} MiB)")
    print("ratios:")
    cases = sorted({case for _, case in results})
    for case in cases:
        small, large = results[("small", case)], results[("large", case)]
        print(f"  {case:10s} peak RSS large/small = {large['rss_mib'] / small['rss_mib']:.2f}  "
              f"(dataset ×{sizes['large'] / sizes['small']:.1f})")
    serial, parallel = results[("large", "stream-1")], results[("large", f"stream-{args.workers}")]
    legacy = results[("large", "memmap-1")]
    print(f"  speed-up {args.workers} workers vs serial: {serial['seconds'] / parallel['seconds']:.2f}×")
    print(f"  streaming vs memmap baseline (serial, large): {legacy['seconds'] / serial['seconds']:.2f}× faster, "
          f"peak RSS {serial['rss_mib']:.0f} vs {legacy['rss_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
