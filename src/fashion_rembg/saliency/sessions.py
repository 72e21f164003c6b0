"""Open rembg sessions strictly offline, on the provider asked for, and say which one ran.

rembg (2.0.86) downloads missing weights with pooch and, with ``session=None``,
silently picks ``bria-rmbg``. Here every session is created explicitly, from a
model file that must already sit inside ``model_home`` (exported as
``U2NET_HOME``, which wins over ``REMBG_HOME``/XDG defaults in every rembg
version), so rembg never touches the network. rembg also falls back to CPU
silently when CUDA cannot load; the providers the onnxruntime session really
uses are recorded (and ``device="cuda"`` turns a fallback into an error).
"""

from __future__ import annotations

import hashlib
import os
import warnings
from importlib.metadata import version as _pkg_version
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import PipelineError
from .registry import (
    CUSTOM_SESSIONS,
    DERIVED_WEIGHTS,
    REMBG_WEIGHTS,
    UNSUPPORTED,
    weights_checksum,
    weights_url,
)
from .registry import registry_models as registry_models  # re-export

if TYPE_CHECKING:
    from rembg.sessions.base import BaseSession

# Kept for callers of the earlier API.
CUSTOM_CONTRACTS = CUSTOM_SESSIONS
DEVICES = ("auto", "cpu", "cuda")


class SaliencyModelError(PipelineError, ValueError):
    """Unknown model, unsupported contract, or a model file outside the model home."""


class MissingWeightsError(PipelineError, FileNotFoundError):
    """The weights are not in the model home (nothing is downloaded here)."""


class ProviderError(PipelineError, RuntimeError):
    """The accelerator that was required did not load."""


def release_url(name: str) -> str | None:
    """Download URL of a registry model's ONNX file (rembg 2.0.86 registry)."""
    return weights_url(name)


def requested_providers(device: str = "auto") -> list[str]:
    """onnxruntime providers to ask for: CUDA (+ CPU fallback) when offered, else CPU."""
    import onnxruntime as ort

    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "cuda" or "CUDAExecutionProvider" in ort.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def default_providers() -> list[str]:
    return requested_providers("auto")


def _inside(path: Path, root: Path) -> bool:
    # rembg compares os.path.abspath (not realpath); do the same so our check
    # and rembg's agree exactly.
    p, r = os.path.abspath(path), os.path.abspath(root)
    return p == r or p.startswith(r + os.sep)


def registry_weights_candidates(model: str, home: Path) -> list[Path]:
    """Where rembg 2.0.86 looks for a registry model, in its order."""
    return [home / "models" / model / f"{model}.onnx", home / f"{model}.onnx"]


def file_digest(path: Path, algo: str = "md5", chunk: int = 1 << 22) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify_weights(model: str, path: Path) -> dict:
    """Compare a registry model file with rembg's published checksum.

    Returns ``{"checksum": "md5:…" | None, "actual": "md5:…" | None, "ok": bool | None}``
    (``ok`` is None when rembg publishes no checksum, e.g. custom or derived models).
    """
    expected = weights_checksum(model)
    if expected is None:
        return {"checksum": None, "actual": None, "ok": None}
    algo, digest = expected.split(":", 1)
    actual = file_digest(Path(path), algo)
    return {"checksum": expected, "actual": f"{algo}:{actual}", "ok": actual == digest}


def open_session(
    model: str,
    model_home: Path,
    *,
    custom_model_path: Path | None = None,
    contract: str = "u2net",
    threads: int = 1,
    providers: list[str] | None = None,
    device: str = "auto",
) -> tuple[BaseSession, dict]:
    """Create a rembg session offline and describe it.

    * ``custom_model_path`` given: a ``u2net_custom`` / ``dis_custom`` / ``ben_custom``
      session (``contract`` u2net / dis / ben) on that file, which must lie inside
      ``model_home``; ``model`` is only a label then.
    * otherwise ``model`` must be a rembg registry name whose weights exist at
      ``<model_home>/models/<name>/<name>.onnx`` or ``<model_home>/<name>.onnx``.

    ``device``: ``auto`` (CUDA when onnxruntime offers it, else CPU), ``cpu``, or
    ``cuda`` (error unless CUDA really runs). ``providers`` overrides the request.
    Returns ``(session, info)``; info has ``providers_requested``, ``providers``
    (active, from onnxruntime), ``provider`` (the one that runs), ``fallback``
    (an accelerator was requested but the session runs on CPU), ``weights``, versions.
    """
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    home = Path(os.path.abspath(Path(model_home).expanduser()))
    # Set before any rembg call: rembg reads these at session-creation time.
    os.environ["U2NET_HOME"] = str(home)
    os.environ["OMP_NUM_THREADS"] = str(threads)

    kwargs: dict = {}
    if custom_model_path is not None:
        if contract not in CUSTOM_SESSIONS:
            raise SaliencyModelError(
                f"unknown custom-model contract {contract!r}; choose one of {sorted(CUSTOM_SESSIONS)}"
            )
        session_name = CUSTOM_SESSIONS[contract]
        path = Path(os.path.abspath(Path(custom_model_path).expanduser()))
        if not _inside(path, home):
            raise SaliencyModelError(
                f"custom model {path} is outside the model home {home}: rembg (>= 2.0.75) only "
                f"loads custom models inside U2NET_HOME; copy or symlink it to {home / path.name}"
            )
        if not path.is_file():
            raise MissingWeightsError(f"custom model file not found: {path}; place the ONNX file there")
        kwargs["model_path"] = str(path)
        weights = path
    else:
        valid = registry_models()
        if model not in valid:
            why = f" ({UNSUPPORTED[model]})" if model in UNSUPPORTED else ""
            raise SaliencyModelError(
                f"unknown rembg model {model!r}{why}; valid names: {', '.join(valid)} "
                f"(or pass custom_model_path= with contract in {sorted(CUSTOM_SESSIONS)})"
            )
        session_name = model
        candidates = registry_weights_candidates(model, home)
        found = [p for p in candidates if p.is_file()]
        if not found:
            if model in REMBG_WEIGHTS:
                how = (
                    f"run the fetch_rembg_weights rule on a networked machine, or download "
                    f"{weights_url(model)} ({weights_checksum(model)}) and save it as {candidates[1]}"
                )
            else:
                how = (
                    f"rembg converts it from {DERIVED_WEIGHTS[model]} (`pip install 'rembg[fp16]'`); "
                    f"place the converted file at {candidates[1]}"
                )
            raise MissingWeightsError(
                f"rembg weights for {model!r} not found (no network access is attempted): "
                f"expected {candidates[1]} or {candidates[0]}; {how}"
            )
        weights = found[0]

    import onnxruntime as ort
    from rembg import new_session

    sess_opts = ort.SessionOptions()
    sess_opts.intra_op_num_threads = threads
    sess_opts.inter_op_num_threads = 1  # sequential graph execution: one pool of `threads`
    requested = list(providers) if providers is not None else requested_providers(device)
    if "CUDAExecutionProvider" in requested and "CUDAExecutionProvider" in ort.get_available_providers():
        try:  # CUDA/cuDNN from the nvidia-* wheels (torch's), when the system has none on its path
            ort.preload_dlls()
        except Exception as err:  # noqa: BLE001  (best effort; the provider check below decides)
            warnings.warn(f"onnxruntime.preload_dlls failed: {err}", RuntimeWarning, stacklevel=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        session = new_session(session_name, sess_opts=sess_opts, providers=requested, **kwargs)
    active = list(session.inner_session.get_providers())
    accelerated = [p for p in requested if p != "CPUExecutionProvider"]
    fallback = bool(accelerated) and not any(p in active for p in accelerated)
    if device == "cuda" and "CUDAExecutionProvider" not in active:
        raise ProviderError(
            f"saliency.device is cuda but onnxruntime runs {model!r} on {active[0]} "
            f"(available providers: {', '.join(ort.get_available_providers())}); install onnxruntime-gpu "
            f"matching the machine's CUDA/cuDNN, or set saliency.device: auto (CPU fallback) or cpu"
        )
    if "CUDAExecutionProvider" in active:
        import torch

        from .. import gpu_slots

        gpu = gpu_slots.job_gpu(torch.cuda.device_count())
        if gpu:  # onnxruntime opened it on cuda:0; move it to this job's GPU slot
            session.inner_session.set_providers(list(active), [{"device_id": gpu} if p == "CUDAExecutionProvider"
                                                               else {} for p in active])
    info = {
        "model": model,
        "rembg_session": type(session).__name__,
        "device": device,
        "providers_requested": requested,
        "providers": active,
        "provider": active[0],
        "fallback": fallback,
        "warnings": [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)],
        "threads": threads,
        "weights": str(weights),
        "onnxruntime": ort.__version__,
        "rembg": _pkg_version("rembg"),
    }
    return session, info
