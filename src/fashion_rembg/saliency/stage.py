"""The mask stage as the workflow runs it: one rembg session per job, provenance recorded."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from ..datasets.store import write_json

log = logging.getLogger(__name__)


def run_mask_stage(images_npy, masks_npy, session_json, *, model: str, model_home, custom: dict | None,
                   post_process: bool, threads: int) -> dict:
    from .masks import write_masks
    from .sessions import open_session

    model_home = Path(model_home)
    custom_path = model_home / custom["file"] if custom else None
    contract = custom.get("contract", "u2net") if custom else "u2net"
    session, info = open_session(model, model_home, custom_model_path=custom_path, contract=contract,
                                 threads=threads)
    start = time.perf_counter()
    write_masks(Path(images_npy), Path(masks_npy), session, post_process=post_process)
    count = np.load(masks_npy, mmap_mode="r").shape[0]
    seconds = time.perf_counter() - start
    info.update({"images": int(count), "seconds": round(seconds, 3),
                 "images_per_second": round(count / max(seconds, 1e-9), 2), "threads": threads,
                 "post_process": post_process})
    log.info("masks: %s", info)
    write_json(info, Path(session_json))
    return info


def write_quality(masks_npy, truth_npy, out_json, *, dataset: str, sod: str) -> dict:
    from .quality import mask_quality

    pred = np.load(masks_npy, mmap_mode="r")
    truth = np.load(truth_npy, mmap_mode="r")
    if pred.shape != truth.shape:
        raise ValueError(f"masks {masks_npy} {pred.shape} and true masks {truth_npy} {truth.shape} differ in shape")
    quality = {"dataset": dataset, "sod": sod, **mask_quality(np.asarray(pred), np.asarray(truth))}
    write_json(json.loads(json.dumps(quality)), Path(out_json))
    log.info("mask quality %s/%s: IoU %.3f", dataset, sod, quality["mean_iou"])
    return quality
