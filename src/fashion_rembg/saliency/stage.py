"""The mask stage as the workflow runs it: a shard plan, one rembg session per shard job,
a gather into ``masks.npy`` with the provenance of every shard, quality and its figure."""
from __future__ import annotations

import json
import logging
import platform
import time
from pathlib import Path

import numpy as np

from ..atomic import atomic_npy, write_json
from ..errors import PipelineError

log = logging.getLogger(__name__)


class WeightsChecksumError(PipelineError):
    """Weights in the model home differ from rembg's published file."""


def plan_shards(images_npy, out_json, *, shard_size: int) -> dict:
    """Split the image store into ``[start, stop)`` shards of ``shard_size`` images (one job each)."""
    if shard_size < 1:
        raise ValueError(f"saliency.shard_size must be >= 1, got {shard_size}")
    n = int(np.load(images_npy, mmap_mode="r").shape[0])
    shards = [[s, min(s + shard_size, n)] for s in range(0, n, shard_size)] or [[0, 0]]
    plan = {"images": n, "shard_size": shard_size, "shards": shards}
    write_json(Path(out_json), plan, allow_nan=True)
    return plan


def shard_ranges(plan_json) -> list[tuple[int, int]]:
    plan = json.loads(Path(plan_json).read_text())
    return [(int(a), int(b)) for a, b in plan["shards"]]


def open_mask_session(spec: dict, model_home, *, threads: int, device: str):
    """rembg session for a mask-set spec (see ``registry.mask_set_spec``)."""
    from .sessions import open_session

    if spec.get("kind") == "custom":
        return open_session(spec["model"], model_home, custom_model_path=Path(model_home) / spec["file"],
                            contract=spec["contract"], threads=threads, device=device)
    if spec.get("kind") == "registry":
        return open_session(spec["model"], model_home, threads=threads, device=device)
    raise ValueError(f"mask set {spec.get('name')!r} of kind {spec.get('kind')!r} has no rembg model")


def check_weights(spec: dict, weights: str, *, verify: bool) -> dict:
    """Checksum of registry weights against rembg's, of a custom model against its configured sha256;
    an error on mismatch when ``verify``."""
    from .sessions import file_digest, verify_weights

    if spec["kind"] == "custom" and spec.get("checksum"):
        actual = f"sha256:{file_digest(Path(weights), 'sha256')}"
        result = {"checksum": spec["checksum"], "actual": actual, "ok": actual == spec["checksum"]}
        fix = (f"replace it with the file whose checksum you configured, or update "
               f"saliency.custom_models.{spec['model']}.sha256")
    elif spec["kind"] == "registry":
        result = verify_weights(spec["model"], Path(weights))
        fix = "delete it and rerun (rule fetch_rembg_weights downloads it again)"
    else:
        return {"checksum": None, "actual": None, "ok": None}
    if result["ok"] is False:
        source = "the config gives" if spec["kind"] == "custom" else "rembg publishes"
        msg = f"{weights} has {result['actual']} but {source} {result['checksum']} for {spec['model']!r}: {fix}"
        if verify:
            raise WeightsChecksumError(msg + ", or set saliency.verify_checksums: false for stand-in weights")
        log.warning("%s (saliency.verify_checksums is false: using it anyway)", msg)
    return result


def run_mask_shard(images_npy, masks_npy, info_json, *, start: int, stop: int, spec: dict, model_home,
                   threads: int, device: str = "auto", batch_size: int = 8, verify_checksums: bool = True,
                   prefetch: bool | None = None, photos: dict | None = None) -> dict:
    """Masks of images ``[start, stop)`` with one rembg session; provenance into ``info_json``.

    ``photos`` (saliency.mask_input: photo): ``{"dataset", "inputs", "manifest", "store_size", "fit"}``;
    rembg then runs on the raw photos behind the store rows and the masks are fitted like the images.
    """
    from .masks import MaskPredictor, write_masks
    from .registry import CONTRACTS

    t0 = time.perf_counter()
    session, info = open_mask_session(spec, model_home, threads=threads, device=device)
    checksum = check_weights(spec, info["weights"], verify=verify_checksums)
    predictor = MaskPredictor(session, CONTRACTS[spec["session"]], batch_size=batch_size,
                              options=spec["options"], prefetch=prefetch, workers=threads)
    t1 = time.perf_counter()
    if photos:
        _photo_input_shard(images_npy, masks_npy, predictor, photos, start=start, stop=stop)
    else:
        write_masks(Path(images_npy), Path(masks_npy), predictor, start=start, stop=stop)
    seconds = time.perf_counter() - t1
    count = stop - start
    info.update(predictor.describe())
    if photos:
        info["prefetch"] = False  # photo input decodes in threads per batch; inference does not overlap it
    info.update({
        "mask_set": spec,
        "mask_input": "photo" if photos else "store",
        "weights_checksum": checksum,
        "start": start,
        "stop": stop,
        "images": count,
        "session_seconds": round(t1 - t0, 3),
        "seconds": round(seconds, 3),
        "images_per_second": round(count / max(seconds, 1e-9), 3),
        "host": platform.node(),
    })
    if info["fallback"]:
        log.warning("requested %s but onnxruntime runs on %s", info["providers_requested"], info["provider"])
    log.info("shard %d-%d of %s: %s", start, stop, spec["name"], info)
    write_json(Path(info_json), info, allow_nan=True)
    return info


def _photo_input_shard(images_npy, masks_npy, predictor, photos: dict, *, start: int, stop: int) -> None:
    """Photo-input masks of one shard, after checking that the manifest still describes the store."""
    from ..datasets.photos import StorePhotos, photo_decode_size
    from .masks import write_photo_masks

    n, h, w = np.load(images_npy, mmap_mode="r").shape[:3]
    store_size = tuple(int(v) for v in photos["store_size"])
    if store_size != (h, w):
        raise ValueError(f"{images_npy} holds {h}x{w} images but store_size is {list(store_size)}: "
                         "rerun the prepare step")
    min_size = photo_decode_size(store_size, predictor.contract.size)
    with StorePhotos(photos["dataset"], photos["inputs"], photos["manifest"], min_size) as source:
        if len(source) != n:
            raise ValueError(f"{photos['manifest']} lists {len(source)} rows but {images_npy} holds {n}: "
                             "rerun the prepare step")
        write_photo_masks(source, Path(masks_npy), predictor, start=start, stop=stop, store_size=store_size,
                          fit=photos["fit"])


def gather_masks(shard_npys, shard_jsons, images_npy, masks_npy, session_json) -> dict:
    """Concatenate shard masks (in ``start`` order) into ``masks_npy``; merge their provenance."""
    infos = [json.loads(Path(p).read_text()) for p in shard_jsons]
    order = sorted(range(len(infos)), key=lambda i: infos[i]["start"])
    images = np.load(images_npy, mmap_mode="r")
    n, h, w = images.shape[:3]
    expect = 0
    for i in order:
        if infos[i]["start"] != expect:
            raise ValueError(f"shards do not tile [0, {n}): {shard_jsons[i]} starts at {infos[i]['start']}, "
                             f"expected {expect}")
        expect = infos[i]["stop"]
    if expect != n:
        raise ValueError(f"shards cover [0, {expect}) but {images_npy} holds {n} images; rerun the shard plan")
    masks_npy = Path(masks_npy)
    with atomic_npy(masks_npy, (n, h, w)) as out:
        for i in order:
            part = np.load(shard_npys[i], mmap_mode="r")
            a, b = infos[i]["start"], infos[i]["stop"]
            if part.shape != (b - a, h, w) or part.dtype != np.uint8:
                raise ValueError(f"{shard_npys[i]} is {part.dtype} {part.shape}, expected uint8 {(b - a, h, w)}")
            out[a:b] = part
    first = infos[order[0]]
    seconds = sum(i["seconds"] for i in infos)
    providers = sorted({i["provider"] for i in infos})
    merged = {k: first[k] for k in ("mask_set", "mask_input", "model", "rembg_session", "device", "providers_requested",
                                     "threads", "weights", "weights_checksum", "onnxruntime", "rembg",
                                     "batch_size", "dynamic_batch", "vectorised", "prefetch", "workers",
                                     "options")}
    merged.update({
        "provider": providers[0] if len(providers) == 1 else providers,
        "providers": sorted({p for i in infos for p in i["providers"]}),
        "fallback": any(i["fallback"] for i in infos),
        "batched_fallback": next((i["batched_fallback"] for i in infos if i.get("batched_fallback")), None),
        "images": int(n),
        "shards": [{k: infos[i][k] for k in ("start", "stop", "provider", "seconds", "images_per_second",
                                              "session_seconds", "host")} for i in order],
        "seconds": round(seconds, 3),
        "images_per_second": round(n / max(seconds, 1e-9), 3),
        "mask_bytes": int(masks_npy.stat().st_size),
    })
    write_json(Path(session_json), merged, allow_nan=True)
    log.info("gathered %d shards into %s (%d images, %s)", len(infos), masks_npy, n, merged["provider"])
    return merged


def write_quality(masks_npy, out_json, *, dataset: str, sod: str, truth_npy=None, classmaps_npy=None) -> dict:
    """quality.json: IoU/MAE/F-beta vs true masks and/or garment recall vs the class maps."""
    from .quality import garment_recall, mask_quality

    if not truth_npy and not classmaps_npy:
        raise ValueError(f"no reference for the quality of {masks_npy}: need true masks or class maps")
    pred = np.load(masks_npy, mmap_mode="r")
    quality: dict = {"dataset": dataset, "sod": sod, "n": int(pred.shape[0])}
    per_image: dict = {}
    for ref_path, what in ((truth_npy, "true masks"), (classmaps_npy, "class maps")):
        if ref_path and np.load(ref_path, mmap_mode="r").shape != pred.shape:
            raise ValueError(f"masks {masks_npy} {pred.shape} and {what} {ref_path} "
                             f"{np.load(ref_path, mmap_mode='r').shape} differ in shape")
    if truth_npy:
        q = mask_quality(pred, np.load(truth_npy, mmap_mode="r"))
        per_image.update(q.pop("per_image"))
        quality.update(q)
        log.info("mask quality %s/%s: IoU %.3f", dataset, sod, quality["mean_iou"])
    if classmaps_npy:
        g = garment_recall(pred, np.load(classmaps_npy, mmap_mode="r"))
        per_image.update(g.pop("per_image"))
        g.pop("n")
        quality.update(g)
        log.info("garment recall %s/%s: %s", dataset, sod, quality["mean_garment_recall"])
    quality["per_image"] = per_image
    write_json(Path(out_json), json.loads(json.dumps(quality)), allow_nan=True)
    return quality


def plot_mask_quality(images_npy, masks_npy, quality_json, out_png, *, truth_npy=None, classmaps_npy=None,
                      rows: int = 3) -> None:
    from .figures import plot_extremes

    plot_extremes(np.load(images_npy, mmap_mode="r"), np.load(masks_npy, mmap_mode="r"),
                  json.loads(Path(quality_json).read_text()), Path(out_png), k=rows,
                  truth=np.load(truth_npy, mmap_mode="r") if truth_npy else None,
                  classmaps=np.load(classmaps_npy, mmap_mode="r") if classmaps_npy else None)
