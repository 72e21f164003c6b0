"""Mask quality of saliency.mask_input store vs photo (and store fit cover vs contain) on the demo.

    PYTHONPATH=src .venv/bin/python benchmarks/mask_input.py [--work benchmarks/out/mask_input]

Generates the default demo (config/config.yaml's generator settings) and trains its stand-in saliency
model once (both cached under --work), then for each case prepares the store with the case's fit,
fits the true masks the same way and computes the rembg masks twice through the pipeline's own code:
`store` (rembg on the store images) and `photo` (rembg on the raw photos, masks fitted like the
images). Prints and writes (JSON) the mean IoU against the true masks, the mean of the per-image
IoU difference photo − store with a 95 % paired-bootstrap interval, and the fraction of the
figure's true-mask pixels that the store keeps (cover crops, contain keeps all).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from fashion_rembg.datasets.fashionstyle14 import prepare_fashionstyle14
from fashion_rembg.datasets.modanet import prepare_modanet
from fashion_rembg.datasets.photos import StorePhotos, photo_decode_size
from fashion_rembg.datasets.store import read_manifest
from fashion_rembg.datasets.truth import prepare_truth
from fashion_rembg.demo import generate_demo
from fashion_rembg.saliency.masks import MaskPredictor, write_photo_masks
from fashion_rembg.saliency.quality import mask_quality
from fashion_rembg.saliency.registry import CONTRACTS
from fashion_rembg.saliency.sessions import open_session
from fashion_rembg.saliency.standin import train_standin_sod

# dataset, store_size [H, W]: the demo's sizes (config/config.yaml) and the paper config's square FS14 store.
CASES = [("fashionstyle14", (96, 64)), ("modanet", (128, 96)), ("fashionstyle14", (224, 224))]
FITS = ("cover", "contain")


def demo_and_model(work: Path) -> tuple[Path, Path]:
    demo, home = work / "demo", work / "models"
    if not (demo / "demo_info.json").is_file():
        generate_demo(demo, seed=0)
    model = home / "demo-sod.onnx"
    if not model.is_file():
        home.mkdir(parents=True, exist_ok=True)
        train_standin_sod(demo / "sod_train", model, seed=0, epochs=30, threads=1)
    return demo, model


def prepare(dataset: str, demo: Path, out: Path, size: tuple[int, int], fit: str) -> dict:
    """Store + true masks; returns the photo reader's inputs (as the prepare rule's)."""
    if dataset == "fashionstyle14":
        root = demo / "FashionStyle14_v1"
        prepare_fashionstyle14(root, out, size, fit=fit)
        inputs = {"fashionstyle14": [str(root / "train.csv")]}
    else:
        lmdb = demo / "modanet" / "photos.lmdb"
        prepare_modanet(demo / "modanet" / "annotations" / "modanet2018_instances_train.json", lmdb, out, size,
                        0.15, 0.15, 0, fit=fit)
        inputs = {"images": str(lmdb / "data.mdb")}
    prepare_truth(out / "manifest.tsv", demo / "truth" / dataset, out / "truth.npy", size, fit)
    return inputs


def kept_fraction(manifest: Path, truth_dir: Path, size: tuple[int, int]) -> float:
    """Mean share of each true mask's pixels inside the centred cover-crop window (contain keeps 1.0)."""
    height, width = size
    shares = []
    for source in read_manifest(manifest)["source"]:
        mask = np.asarray(Image.open(truth_dir / Path(source).with_suffix(".png")).convert("L")) >= 128
        h, w = mask.shape
        ch, cw = min(h, w * height / width), min(w, h * width / height)  # crop window in photo pixels
        y0, x0 = int(round((h - ch) / 2)), int(round((w - cw) / 2))
        inside = mask[y0 : y0 + int(round(ch)), x0 : x0 + int(round(cw))].sum()
        shares.append(inside / max(mask.sum(), 1))
    return float(np.mean(shares))


def paired_ci(delta: np.ndarray, reps: int = 10000, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    means = delta[rng.integers(0, len(delta), (reps, len(delta)))].mean(1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("benchmarks/out/mask_input"))
    ap.add_argument("--out", type=Path, default=None, help="JSON results (default <work>/results.json)")
    args = ap.parse_args()
    demo, model = demo_and_model(args.work)
    session, _ = open_session("demo-sod", model.parent, custom_model_path=model, contract="u2net", threads=2,
                              device="cpu")
    predictor = MaskPredictor(session, CONTRACTS["u2net_custom"], batch_size=8, prefetch=False)
    rows = []
    for dataset, size in CASES:
        for fit in FITS:
            out = args.work / "stores" / f"{dataset}-{size[0]}x{size[1]}-{fit}"
            inputs = prepare(dataset, demo, out, size, fit)
            images = np.load(out / "images.npy", mmap_mode="r")
            truth = np.load(out / "truth.npy")
            t0 = time.perf_counter()
            store = predictor.predict(images)
            t1 = time.perf_counter()
            min_size = photo_decode_size(size, predictor.contract.size)
            with StorePhotos(dataset, inputs, out / "manifest.tsv", min_size) as photos:
                write_photo_masks(photos, out / "photo_masks.npy", predictor, start=0, stop=len(photos),
                                  store_size=size, fit=fit)
            t2 = time.perf_counter()
            photo = np.load(out / "photo_masks.npy")
            q_store, q_photo = mask_quality(store, truth), mask_quality(photo, truth)
            delta = np.asarray(q_photo["per_image"]["iou"]) - np.asarray(q_store["per_image"]["iou"])
            lo, hi = paired_ci(delta)
            row = {"dataset": dataset, "store_size": list(size), "fit": fit, "n": int(len(truth)),
                   "iou_store": round(q_store["mean_iou"], 4), "iou_photo": round(q_photo["mean_iou"], 4),
                   "delta": round(float(delta.mean()), 4), "ci_low": round(lo, 4), "ci_high": round(hi, 4),
                   "photo_better": int((delta > 0).sum()), "store_better": int((delta < 0).sum()),
                   "figure_kept": 1.0 if fit == "contain" else round(
                       kept_fraction(out / "manifest.tsv", demo / "truth" / dataset, size), 4),
                   "ms_per_image_store": round(1000 * (t1 - t0) / len(truth), 2),
                   "ms_per_image_photo": round(1000 * (t2 - t1) / len(truth), 2)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    out_json = args.out or args.work / "results.json"
    out_json.write_text(json.dumps(rows, indent=1) + "\n")
    print("\n| dataset | store H×W | fit | n | figure kept | IoU store | IoU photo | Δ photo−store [95% CI] |")
    print("|---|---|---|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['dataset']} | {r['store_size'][0]}×{r['store_size'][1]} | {r['fit']} | {r['n']} | "
              f"{r['figure_kept']:.3f} | {r['iou_store']:.3f} | {r['iou_photo']:.3f} | "
              f"{r['delta']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}] |")


if __name__ == "__main__":
    main()
