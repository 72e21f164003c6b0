#!/usr/bin/env python
"""Throughput of the saliency stage vs raw onnxruntime and vs `rembg p`, same images, same model.

The model is a real U^2-Net (the architecture behind rembg's u2net weights; random weights),
exported to ONNX at 320x320 into a temporary U2NET_HOME under the registry name `u2net`, so
rembg's own U2netSession loads it (`--arch u2netp`: U^2-Net-P under `u2netp`). Every mode runs in
its own fresh process (its peak RSS is its own); timings exclude interpreter start and imports,
include session creation for (b) and (c).

  (a) raw onnxruntime: `session.run` on preprocessed tensors only, same threads/provider and batch
  (b) this stage: `run_mask_shard` on the image store (read, preprocess, infer, postprocess, write)
  (c) `rembg p -om` on a folder of the same images as PNG files; when rembg's CLI extra is not
      installed, its per-file loop (read bytes -> rembg.remove(only_mask=True) -> write PNG) in-process

Usage (2-core CPU):   .venv/bin/python benchmarks/saliency_throughput.py
GPU (onnxruntime-gpu): .venv/bin/python benchmarks/saliency_throughput.py --device cuda --images 256
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()


def synthetic_images(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """Photo-like images: smooth background, a figure-shaped blob, texture noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    out = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        bg = rng.uniform(40, 220, 3) + 60 * np.stack([yy, xx, yy * xx], -1) * rng.uniform(-1, 1, 3)
        cy, cx, ry, rx = rng.uniform(0.35, 0.65), rng.uniform(0.35, 0.65), rng.uniform(0.2, 0.4), rng.uniform(0.1, 0.25)
        fig = (((yy * max(h, w) / h - cy) / ry) ** 2 + ((xx * max(h, w) / w - cx) / rx) ** 2) <= 1
        img = np.where(fig[..., None], rng.uniform(0, 255, 3), bg) + rng.normal(0, 12, (h, w, 3))
        out[i] = np.clip(img, 0, 255).astype(np.uint8)
    return out


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM resets at exec, unlike ru_maxrss which keeps the parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cli_available() -> bool:
    try:
        import rembg.commands  # noqa: F401  (imports the CLI extra: click, filetype, watchdog, gradio, ...)

        return True
    except Exception:
        return False


# ----------------------------------------------------------------------------- the three modes (child process)


def mode_raw(work: Path, args) -> dict:
    import onnxruntime as ort

    from fashion_rembg.saliency.masks import preprocess
    from fashion_rembg.saliency.registry import CONTRACTS
    from fashion_rembg.saliency.sessions import requested_providers

    images = np.load(work / "images.npy")
    contract = CONTRACTS[args.arch]
    batches = [preprocess(images[s : s + args.batch_size], contract) for s in range(0, len(images), args.batch_size)]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1
    providers = requested_providers(args.device)
    if args.device == "cuda":
        ort.preload_dlls()  # as the stage does
    sess = ort.InferenceSession(str(work / "home" / f"{args.arch}.onnx"), opts, providers=providers)
    if args.device == "cuda" and sess.get_providers()[0] != "CUDAExecutionProvider":
        raise SystemExit(
            f"CUDA requested but onnxruntime runs {sess.get_providers()}: see onnxruntime's "
            "stderr above for the CUDA/cuDNN library that failed to load"
        )
    name = sess.get_inputs()[0].name
    start = time.perf_counter()  # first-run costs included, as in (b) and (c)
    for x in batches:
        sess.run(None, {name: x})
    seconds = time.perf_counter() - start
    return {"images": len(images), "seconds": seconds, "provider": sess.get_providers()[0]}


def mode_stage(work: Path, args) -> dict:
    import rembg  # noqa: F401  (imports are outside every timer)

    from fashion_rembg.saliency.registry import mask_set_spec
    from fashion_rembg.saliency.stage import run_mask_shard

    config = {"saliency": {"custom_models": {}, "mask_sets": {}, "post_process": False}}
    spec = mask_set_spec(config, args.arch)
    n = int(np.load(work / "images.npy", mmap_mode="r").shape[0])
    start = time.perf_counter()
    info = run_mask_shard(
        work / "images.npy",
        work / "stage_masks.npy",
        work / "stage.json",
        start=0,
        stop=n,
        spec=spec,
        model_home=work / "home",
        threads=args.threads,
        device=args.device,
        batch_size=args.batch_size,
        verify_checksums=False,
        prefetch={"auto": None, "on": True, "off": False}[args.prefetch],
    )
    seconds = time.perf_counter() - start
    return {
        "images": n,
        "seconds": seconds,
        "steady_seconds": info["seconds"],
        "provider": info["provider"],
        "batch_size": info["batch_size"],
        "prefetch": info["prefetch"],
    }


def mode_rembg(work: Path, args) -> dict:
    src, out = work / "png_in", work / "rembg_out"
    env = dict(os.environ, U2NET_HOME=str(work / "home"), OMP_NUM_THREADS=str(args.threads))
    n = len(list(src.iterdir()))
    shutil.rmtree(out, ignore_errors=True)  # rembg p skips files whose output exists
    if cli_available():
        rembg_bin = Path(sys.executable).with_name("rembg")
        start = time.perf_counter()
        subprocess.run(
            [str(rembg_bin), "p", "-m", args.arch, "-om", str(src), str(out)], env=env, check=True, capture_output=True
        )
        return {"images": n, "seconds": time.perf_counter() - start, "how": "rembg p -om (CLI, wall incl. start-up)"}
    # rembg p's loop (rembg/commands/p_command.py `process`), minus its filetype sniffing and tqdm.
    os.environ.update(U2NET_HOME=env["U2NET_HOME"], OMP_NUM_THREADS=env["OMP_NUM_THREADS"])
    import onnxruntime as ort
    from rembg import new_session, remove

    if args.device == "cuda":
        ort.preload_dlls()  # same CUDA libraries as (a) and (b)

    start = time.perf_counter()
    session = new_session(args.arch)  # rembg p passes no providers: rembg picks CUDA when it can
    steady = time.perf_counter()
    out.mkdir(exist_ok=True)
    for f in sorted(src.iterdir()):
        (out / f.name).with_suffix(".png").write_bytes(remove(f.read_bytes(), session=session, only_mask=True))
    end = time.perf_counter()
    return {
        "images": n,
        "seconds": end - start,
        "steady_seconds": end - steady,
        "provider": session.inner_session.get_providers()[0],
        "how": "rembg p's per-file loop in-process (CLI extra not installed)",
    }


MODES = {"raw": mode_raw, "stage": mode_stage, "rembg": mode_rembg}


# ----------------------------------------------------------------------------- driver


def run_child(mode: str, work: Path, argv: list[str]) -> dict:
    out = subprocess.run(
        [sys.executable, str(HERE), "--child", mode, "--work", str(work), *argv], capture_output=True, text=True
    )
    if out.returncode != 0:
        raise SystemExit(f"mode {mode} failed:\n{out.stdout[-3000:]}\n{out.stderr[-5000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--images", type=int, default=None, help="default: 24 on CPU, 256 on CUDA")
    p.add_argument("--size", default="384x256", help="image store size HxW (ModaNet's working size)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--batch-size", type=int, default=None, help="default: 1 on CPU, 16 on CUDA")
    p.add_argument(
        "--prefetch",
        choices=["auto", "on", "off"],
        default="auto",
        help="stage pipeline threads (auto: on when CUDA runs, off on the CPU)",
    )
    p.add_argument(
        "--arch",
        choices=["u2net", "u2netp"],
        default="u2net",
        help="U^2-Net (44M parameters) or U^2-Net-P (1.1M), exported under rembg's model name",
    )
    p.add_argument("--width", type=float, default=1.0, help="U^2-Net channel width (1.0 = rembg's u2net)")
    p.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="interleaved repetitions: images/s = best round per mode, ratios = median of per-round ratios",
    )
    p.add_argument("--out", type=Path, default=None, help="also write the figures as JSON here")
    p.add_argument("--child", choices=list(MODES), help=argparse.SUPPRESS)
    p.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.batch_size is None:
        args.batch_size = 16 if args.device == "cuda" else 1
    if args.child:
        result = MODES[args.child](args.work, args)
        result["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(result))
        return

    import onnxruntime as ort

    if args.device == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
        raise SystemExit(
            "--device cuda needs onnxruntime-gpu (CUDAExecutionProvider not available): "
            "pip install 'onnxruntime-gpu==" + ort.__version__ + "' in place of onnxruntime"
        )
    n = args.images or (256 if args.device == "cuda" else 24)
    h, w = (int(v) for v in args.size.lower().split("x"))
    child_argv = [
        "--arch",
        args.arch,
        "--device",
        args.device,
        "--threads",
        str(args.threads),
        "--batch-size",
        str(args.batch_size),
    ]
    child_argv += ["--prefetch", args.prefetch]
    with tempfile.TemporaryDirectory(prefix="saliency-bench-") as tmp:
        work = Path(tmp)
        from PIL import Image

        from fashion_rembg.saliency.u2net_arch import export_u2net_onnx

        t = time.perf_counter()
        model = export_u2net_onnx(work / "home" / f"{args.arch}.onnx", width=args.width, small=args.arch == "u2netp")
        print(
            f"{args.arch} (width {args.width}) exported: {model.stat().st_size / 1e6:.1f} MB in "
            f"{time.perf_counter() - t:.1f} s"
        )
        images = synthetic_images(n, h, w)
        np.save(work / "images.npy", images)
        (work / "png_in").mkdir()
        for i, img in enumerate(images):
            Image.fromarray(img).save(work / "png_in" / f"{i:05d}.png")
        print(
            f"{n} images {h}x{w}, device {args.device}, threads {args.threads}, batch {args.batch_size}, "
            f"rembg CLI extra {'installed' if cli_available() else 'missing'}"
        )
        # Interleaved rounds, best round per mode: robust to other load on a shared machine.
        rounds: dict[str, list[dict]] = {m: [] for m in MODES}
        order = ["raw", "stage", "rembg"]
        for r in range(args.rounds):
            for m in order[r % 3 :] + order[: r % 3]:  # rotate the order: no mode always runs first
                rounds[m].append(run_child(m, work, child_argv))
            print(
                f"round {r + 1}/{args.rounds}: "
                + ", ".join(f"{m} {x[-1]['images'] / x[-1]['seconds']:.3f}/s" for m, x in rounds.items())
            )
        res = {m: min(x, key=lambda v: v["seconds"]) for m, x in rounds.items()}
        stage = np.load(work / "stage_masks.npy")
        rembg_masks = np.stack(
            [np.asarray(Image.open(work / "rembg_out" / f"{i:05d}.png").convert("L")) for i in range(n)]
        )
        diff = int(np.abs(stage.astype(int) - rembg_masks.astype(int)).max())
    ips = {m: r["images"] / r["seconds"] for m, r in res.items()}
    steady = {m: r["images"] / r.get("steady_seconds", r["seconds"]) for m, r in res.items()}
    print(f"\n{'mode':<8}{'images/s':>10}{'steady':>10}{'seconds':>10}{'peak RSS MB':>13}  provider / how")
    for m, label in (("raw", "(a) raw onnxruntime"), ("stage", "(b) stage"), ("rembg", "(c) rembg p")):
        r = res[m]
        print(
            f"{m:<8}{ips[m]:>10.3f}{steady[m]:>10.3f}{r['seconds']:>10.2f}{r['peak_rss_mb']:>13.0f}  "
            f"{label}: {r.get('provider', '')} {r.get('how', '')}"
        )

    # b/a: what the stage adds around inference (both without session creation);
    # b/c: whole runs, session creation included in both. Ratios are taken within each round
    # (adjacent runs see the same machine load) and the median over rounds is reported.
    def rate(r: dict, key: str = "seconds") -> float:
        return r["images"] / r.get(key, r["seconds"])

    ba = [rate(rounds["stage"][i], "steady_seconds") / rate(rounds["raw"][i]) for i in range(args.rounds)]
    bc = [rate(rounds["stage"][i]) / rate(rounds["rembg"][i]) for i in range(args.rounds)]
    summary = {
        "b/a": float(np.median(ba)),
        "b/c": float(np.median(bc)),
        "b/a_rounds": ba,
        "b/c_rounds": bc,
        "b/a_best": steady["stage"] / ips["raw"],
        "b/c_best": ips["stage"] / ips["rembg"],
        "max_mask_diff_stage_vs_rembg": diff,
    }
    print(f"\nper round b/a: {' '.join(f'{v:.3f}' for v in ba)}   b/c: {' '.join(f'{v:.3f}' for v in bc)}")
    print(
        f"b/a = {summary['b/a']:.3f} (median; goal >= 0.9; steady stage vs inference alone; best-of: "
        f"{summary['b/a_best']:.3f})   b/c = {summary['b/c']:.3f} (median; goal >= 1.5; whole runs; best-of: "
        f"{summary['b/c_best']:.3f})   stage vs rembg masks: max |diff| = {diff} grey level(s)"
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps(
                {
                    "args": {k: str(v) for k, v in vars(args).items()},
                    "images": n,
                    "size": [h, w],
                    "modes": res,
                    "images_per_second": ips,
                    "steady_images_per_second": steady,
                    "rounds": rounds,
                    **summary,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
