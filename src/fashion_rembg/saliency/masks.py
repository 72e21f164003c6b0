"""Saliency masks: rembg's ``remove(..., only_mask=True)``, batched and vectorised.

``compute_masks`` is the reference: one ``rembg.remove`` call per image.
``MaskPredictor`` produces the same masks (equal, or within one grey level where
onnxruntime's batched convolutions round differently) with one onnxruntime call per
batch: rembg's ``normalize`` and ``predict`` are reimplemented operation for
operation (float64 normalisation, float32 min-max per image, truncation to uint8),
only the two LANCZOS resizes stay per image in PIL (exactness), and
``post_process_mask`` runs on the whole batch with the same scipy kernels. Models
that rembg cannot batch (fixed batch axis, u2net_cloth_seg) fall back to batch 1
or to rembg's own ``predict``.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from ..atomic import atomic_npy
from .registry import CONTRACTS, MASK_OPTIONS, Contract

log = logging.getLogger(__name__)
_LANCZOS = Image.Resampling.LANCZOS


def _check_images(images: np.ndarray, what: str = "images") -> None:
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(
            f"{what} must be uint8 (N, H, W, 3) RGB, got {images.dtype} {tuple(images.shape)}"
        )


def compute_masks(images: np.ndarray, session, *, post_process: bool = False, **remove_kwargs) -> np.ndarray:
    """Reference soft masks, uint8 ``(N, H, W)``, one ``rembg.remove`` call per image.

    ``session`` must be an explicit rembg session (``session=None`` would make
    rembg download its default model).
    """
    from rembg import remove

    if session is None:
        raise ValueError("compute_masks needs an explicit rembg session (see saliency.sessions.open_session)")
    _check_images(images)
    n, h, w, _ = images.shape
    out = np.empty((n, h, w), dtype=np.uint8)
    for i in range(n):
        mask = remove(
            Image.fromarray(np.ascontiguousarray(images[i])),
            session=session,
            only_mask=True,
            post_process_mask=post_process,
            **remove_kwargs,
        )
        arr = np.asarray(mask.convert("L") if mask.mode != "L" else mask)
        if arr.shape != (h, w):
            raise RuntimeError(
                f"rembg returned a mask of shape {arr.shape} for an image of shape {(h, w)}; "
                f"the session ({type(session).__name__}) does not produce one mask per image"
            )
        out[i] = arr
    return out


# ----------------------------------------------------------------------------- vectorised rembg


def _normalize_one(img: np.ndarray, contract: Contract) -> np.ndarray:
    s = contract.size
    im = np.asarray(Image.fromarray(np.ascontiguousarray(img)).resize((s, s), _LANCZOS))
    x = im / max(np.max(im), 1e-6)
    x = (x - np.asarray(contract.mean, dtype=np.float64)) / np.asarray(contract.std, dtype=np.float64)
    return x.transpose(2, 0, 1).astype(np.float32)


def preprocess(images: np.ndarray | list[np.ndarray], contract: Contract,
               pool: ThreadPoolExecutor | None = None) -> np.ndarray:
    """rembg ``BaseSession.normalize`` for a batch: float32 ``(B, 3, S, S)`` (a list may mix sizes).

    Same operations as rembg (LANCZOS resize in PIL, division by the image's own
    max in float64, ImageNet-style mean/std in float64, cast at the end), so the
    tensor is bit-identical to rembg's. ``pool`` spreads the images over threads
    (PIL and numpy release the GIL).
    """
    items = list(images)
    mapped = pool.map(_normalize_one, items, [contract] * len(items)) if pool else map(
        _normalize_one, items, [contract] * len(items))
    return np.stack(list(mapped)) if items else np.empty((0, 3, contract.size, contract.size), np.float32)


def _resize_one(small: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h, w = size
    return np.asarray(Image.fromarray(small).resize((w, h), _LANCZOS))


def small_masks(raw: np.ndarray, contract: Contract) -> np.ndarray:
    """rembg ``predict`` before the final resize: uint8 ``(B, h, w)`` at the model's output size.

    ``raw`` is the model's first output ``(B, C, h, w)``; channel 0 is min-max
    normalised per image in float32 (rembg's arithmetic) and truncated to uint8.
    A spatially constant map gives 0 (rembg's 0/0 NaN cast).
    """
    pred = raw[:, 0, :, :]
    if contract.sigmoid:
        pred = 1 / (1 + np.exp(-pred))
    ma = pred.max(axis=(1, 2), keepdims=True)
    mi = pred.min(axis=(1, 2), keepdims=True)
    flat = (ma == mi).reshape(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        pred = (pred - mi) / (ma - mi)
    if contract.clip:
        pred = pred.clip(0, 1)
    pred[flat] = 0
    return (pred * 255).astype(np.uint8)


def postprocess(raw: np.ndarray, contract: Contract, size: tuple[int, int],
                pool: ThreadPoolExecutor | None = None) -> np.ndarray:
    """rembg ``predict`` after inference for a batch: uint8 ``(B, H, W)``, each mask
    (``small_masks``) LANCZOS-resized to the image size ``size=(H, W)``."""
    small = list(small_masks(raw, contract))
    mapped = pool.map(_resize_one, small, [size] * len(small)) if pool else map(_resize_one, small, [size] * len(small))
    out = np.empty((len(small), *size), dtype=np.uint8)
    for i, m in enumerate(mapped):
        out[i] = m
    return out


def post_process_masks(masks: np.ndarray) -> np.ndarray:
    """rembg ``post_process`` (opening with disk(1), Gaussian sigma 2, threshold 127) on a batch."""
    from scipy.ndimage import gaussian_filter, grey_dilation, grey_erosion

    # skimage's disk(1): a 3x3 cross; skimage.morphology.opening = grey erosion then dilation (reflect).
    cross = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool)[None]
    opened = grey_dilation(grey_erosion(masks, footprint=cross, mode="reflect"), footprint=cross, mode="reflect")
    blurred = gaussian_filter(opened.astype(np.float64), sigma=(0, 2, 2))
    return np.where(blurred < 127, 0, 255).astype(np.uint8)


def alpha_matting_masks(images: np.ndarray, masks: np.ndarray, options: dict) -> np.ndarray:
    """The alpha channel of rembg's alpha-matting cutout (per image, pymatting)."""
    from rembg.bg import alpha_matting_cutout

    out = np.empty_like(masks)
    for i in range(len(masks)):
        img = Image.fromarray(np.ascontiguousarray(images[i]))
        try:
            cutout = alpha_matting_cutout(
                img,
                Image.fromarray(masks[i]),
                options["alpha_matting_foreground_threshold"],
                options["alpha_matting_background_threshold"],
                options["alpha_matting_erode_size"],
            )
            out[i] = np.asarray(cutout)[..., 3]
        except ValueError:
            # rembg falls back to the decontaminated cutout, whose alpha is the mask
            # through the same float round trip.
            out[i] = np.clip((masks[i] / 255.0) * 255, 0, 255).astype(np.uint8)
    return out


def apply_mask_options(images: np.ndarray, masks: np.ndarray, options: dict, *, threshold: bool = True) -> np.ndarray:
    """rembg's mask options in rembg's order (post_process, alpha matting), then our threshold."""
    opts = {**MASK_OPTIONS, **(options or {})}
    if opts["post_process"]:
        masks = post_process_masks(masks)
    if opts["alpha_matting"]:
        masks = alpha_matting_masks(images, masks, opts)
    return threshold_masks(masks, opts) if threshold else masks


def threshold_masks(masks: np.ndarray, options: dict) -> np.ndarray:
    """The mask set's ``threshold`` (mask >= t → 255, else 0); soft masks stay as they are without one."""
    t = {**MASK_OPTIONS, **(options or {})}["threshold"]
    return masks if t is None else np.where(masks >= t, 255, 0).astype(np.uint8)


class MaskPredictor:
    """Masks for image batches through one rembg session (batched where the model allows)."""

    def __init__(self, session, contract: Contract | str, *, batch_size: int = 8, options: dict | None = None,
                 prefetch: bool | None = None, workers: int = 1) -> None:
        if batch_size < 1 or workers < 1:
            raise ValueError(f"batch_size and workers must be >= 1, got {batch_size}, {workers}")
        self.session = session
        self.contract = CONTRACTS[contract] if isinstance(contract, str) else contract
        self.options = {**MASK_OPTIONS, **(options or {})}
        inp = session.inner_session.get_inputs()[0]
        self.input_name = inp.name
        # An int batch dimension (usually 1) is fixed in the graph; a name or None is dynamic.
        self.dynamic_batch = not isinstance(inp.shape[0], int)
        self.batch_size = batch_size if (self.dynamic_batch and self.contract.batched) else 1
        # Auto: overlap host work with inference only when an accelerator runs the model. On the
        # CPU onnxruntime's threads already use the cores, and one extra busy thread makes every
        # parallel section wait for a descheduled thread (measured: 1.0 s -> 1.7 s per U^2-Net run).
        if prefetch is None:
            prefetch = session.inner_session.get_providers()[0] != "CPUExecutionProvider"
        self.prefetch = prefetch
        self.workers = workers
        self.batched_fallback: str | None = None

    def describe(self) -> dict:
        return {
            "batch_size": self.batch_size,
            "dynamic_batch": self.dynamic_batch,
            "vectorised": self.contract.batched,
            "batched_fallback": self.batched_fallback,
            "prefetch": self.prefetch,
            "workers": self.workers,
            "options": self.options,
        }

    def _infer(self, x: np.ndarray) -> np.ndarray:
        run = self.session.inner_session.run
        if len(x) > 1 and self.batched_fallback is None:
            try:
                return run(None, {self.input_name: x})[0]
            except Exception as err:  # a graph with a hidden fixed batch: one by one from now on
                self.batched_fallback = f"{type(err).__name__}: {str(err)[:200]}"
                log.warning("batched inference failed (%s); continuing image by image", self.batched_fallback)
        if len(x) == 1:
            return run(None, {self.input_name: x})[0]
        return np.concatenate([run(None, {self.input_name: x[i : i + 1]})[0] for i in range(len(x))])

    def _rembg_predict(self, images: np.ndarray) -> np.ndarray:
        cc = self.options.get("cloth_category")
        kwargs = {"cloth_category": cc} if cc else {}
        out = np.empty(images.shape[:3], dtype=np.uint8)
        for i in range(len(images)):
            masks = self.session.predict(Image.fromarray(np.ascontiguousarray(images[i])), **kwargs)
            if len(masks) != 1:
                raise RuntimeError(f"{type(self.session).__name__} returned {len(masks)} masks per image, not 1")
            out[i] = np.asarray(masks[0].convert("L"))
        return out

    def raw_masks(self, images: np.ndarray) -> np.ndarray:
        """Masks before options (== rembg ``predict``) for one batch."""
        if not self.contract.batched:
            return self._rembg_predict(images)
        return postprocess(self._infer(preprocess(images, self.contract)), self.contract, images.shape[1:3])

    def photo_masks(self, photos: list[np.ndarray]) -> list[np.ndarray]:
        """``rembg.remove(photo, only_mask=True, <options>)`` for photos of any sizes, at each photo's size.

        The batch shares one onnxruntime call (each photo is resized to the model's input size, as
        rembg does); rembg's post_process / alpha matting run per photo at its own resolution. The
        mask set's threshold is not applied: the caller fits the masks to the store first.
        """
        if not photos:
            return []
        for p in photos:
            _check_images(p[None], "photo")
        if self.contract.batched:
            small = small_masks(self._infer(preprocess(photos, self.contract)), self.contract)
            raw = [_resize_one(m, p.shape[:2]) for m, p in zip(small, photos)]
        else:
            raw = [self._rembg_predict(p[None])[0] for p in photos]
        return [apply_mask_options(p[None], m[None], self.options, threshold=False)[0] for p, m in zip(photos, raw)]

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Masks for all ``images`` (uint8 (N, H, W, 3)), options applied."""
        _check_images(images)
        out = np.empty(images.shape[:3], dtype=np.uint8)
        for start, masks in self.stream(images):
            out[start : start + len(masks)] = masks
        return out

    def stream(self, images: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(start, masks)`` batch by batch, in order; ``images`` may be a memmap.

        With ``prefetch`` this is a three-stage pipeline: while onnxruntime runs batch k,
        one thread reads and preprocesses batch k+1 and another postprocesses batch k-1,
        each spreading its images over ``workers`` threads, so on a GPU the host work
        hides behind inference. Without it (the CPU default) the steps run in turn.
        """
        n = len(images)
        if n == 0:
            return
        if not self.contract.batched:
            for s in range(0, n, 16):
                chunk = np.asarray(images[s : s + 16])
                yield s, apply_mask_options(chunk, self._rembg_predict(chunk), self.options)
            return
        bs = self.batch_size
        starts = list(range(0, n, bs))
        if not self.prefetch:
            for s in starts:
                chunk = np.ascontiguousarray(images[s : s + bs])
                raw = self._infer(preprocess(chunk, self.contract))
                yield s, apply_mask_options(chunk, postprocess(raw, self.contract, chunk.shape[1:3]), self.options)
            return

        with ThreadPoolExecutor(self.workers) as cpu, ThreadPoolExecutor(1) as pre, ThreadPoolExecutor(1) as post:

            def load(s: int) -> tuple[np.ndarray, np.ndarray]:
                chunk = np.ascontiguousarray(images[s : s + bs])
                return chunk, preprocess(chunk, self.contract, cpu)

            def finish(chunk: np.ndarray, raw: np.ndarray) -> np.ndarray:
                masks = postprocess(raw, self.contract, chunk.shape[1:3], cpu)
                return apply_mask_options(chunk, masks, self.options)

            loading = pre.submit(load, starts[0])
            finishing = None
            for k, s in enumerate(starts):
                chunk, x = loading.result()
                if k + 1 < len(starts):
                    loading = pre.submit(load, starts[k + 1])
                raw = self._infer(x)
                if finishing is not None:
                    yield finishing[0], finishing[1].result()
                finishing = (s, post.submit(finish, chunk, raw))
            yield finishing[0], finishing[1].result()

def write_masks(
    images_npy: Path,
    out_npy: Path,
    predictor: MaskPredictor,
    *,
    start: int = 0,
    stop: int | None = None,
) -> Path:
    """Masks of ``images_npy[start:stop]`` (uint8 (N,H,W,3)) into ``out_npy`` (uint8 (n,H,W)).

    Reads with ``mmap_mode="r"`` and writes into a temporary ``.npy`` memmap
    renamed onto ``out_npy`` only when complete.
    """
    images_npy, out_npy = Path(images_npy), Path(out_npy)
    images = np.load(images_npy, mmap_mode="r")
    _check_images(images, what=str(images_npy))
    n_all, h, w, _ = images.shape
    stop = n_all if stop is None else stop
    if not 0 <= start <= stop <= n_all:
        raise ValueError(f"shard [{start}, {stop}) is outside {images_npy} ({n_all} images)")
    view = images[start:stop]
    n = stop - start
    with atomic_npy(out_npy, (n, h, w)) as out:
        if out.size:
            for s, masks in predictor.stream(view):
                out[s : s + len(masks)] = masks
    return out_npy


def write_photo_masks(photos, out_npy: Path, predictor: MaskPredictor, *, start: int, stop: int,
                      store_size: tuple[int, int], fit: str) -> Path:
    """Masks of store rows ``[start, stop)`` computed on their raw photos (``datasets.photos.StorePhotos``):
    rembg on each whole photo, the mask fitted to the store like the image (``fit_image``, bilinear:
    a soft mask resamples like pixels), then the mask set's threshold. Holds one batch of photos,
    decoded by ``predictor.workers`` threads (PIL releases the GIL; decoding dominates on a GPU)."""
    from ..datasets.store import fit_image

    if not 0 <= start <= stop <= len(photos):
        raise ValueError(f"shard [{start}, {stop}) is outside the manifest ({len(photos)} rows)")
    h, w = store_size
    with atomic_npy(Path(out_npy), (stop - start, h, w)) as out, ThreadPoolExecutor(predictor.workers) as pool:
        for s in range(start, stop, predictor.batch_size):
            batch = list(pool.map(photos.photo, range(s, min(s + predictor.batch_size, stop))))
            for i, mask in enumerate(predictor.photo_masks(batch)):
                fitted = np.asarray(fit_image(Image.fromarray(mask), store_size, fit=fit))
                out[s - start + i] = threshold_masks(fitted[None], predictor.options)[0]
    return Path(out_npy)
