"""Open rembg sessions strictly offline.

rembg (2.0.86) downloads missing weights with pooch and, with ``session=None``,
silently picks ``bria-rmbg``. Here every session is created explicitly, from a
model file that must already sit inside ``model_home`` (exported as
``U2NET_HOME``, which wins over ``REMBG_HOME``/XDG defaults in every rembg
version), so rembg never touches the network.
"""

from __future__ import annotations

import inspect
import os
import re
from importlib.metadata import version as _pkg_version
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rembg.sessions.base import BaseSession

RELEASE_URL = "https://github.com/danielgatis/rembg/releases/download/v0.0.0/{file}"

# Custom-model contracts -> rembg session names.
CUSTOM_CONTRACTS = {"u2net": "u2net_custom", "dis": "dis_custom"}

# Registered rembg sessions that cannot produce one (H, W) saliency mask per
# image from a single local <name>.onnx file.
_UNSUPPORTED = {
    "sam": "needs encoder+decoder files and point/box prompts",
    "u2net_cloth_seg": "returns three stacked clothing masks, not one saliency mask",
    "ben_custom": "custom model without a supported contract",
}


def _session_registry() -> dict:
    from rembg.sessions import sessions

    return dict(sessions)


def registry_models() -> list[str]:
    """Names usable as ``model`` without ``custom_model_path`` (local, single file)."""
    out = []
    for name, cls in _session_registry().items():
        if name in _UNSUPPORTED or name in CUSTOM_CONTRACTS.values():
            continue
        if not cls.is_local() or cls.requires_credentials():
            continue  # cloud APIs (withoutbg, atlascloud) send images off the machine
        out.append(name)
    return sorted(out)


def release_url(name: str) -> str | None:
    """Download URL of a registry model's ONNX file, read from rembg's own source."""
    cls = _session_registry().get(name)
    if cls is None:
        return None
    try:
        src = inspect.getsource(cls.download_models)
    except (OSError, TypeError):
        return None
    m = re.search(r"releases/download/v0\.0\.0/([A-Za-z0-9_.\-]+\.onnx)", src)
    return RELEASE_URL.format(file=m.group(1)) if m else None


def default_providers() -> list[str]:
    """CUDA (with CPU fallback) when onnxruntime offers it, else CPU only."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def _inside(path: Path, root: Path) -> bool:
    # rembg compares os.path.abspath (not realpath); do the same so our check
    # and rembg's agree exactly.
    p, r = os.path.abspath(path), os.path.abspath(root)
    return p == r or p.startswith(r + os.sep)


def open_session(
    model: str,
    model_home: Path,
    *,
    custom_model_path: Path | None = None,
    contract: str = "u2net",
    threads: int = 1,
    providers: list[str] | None = None,
) -> tuple[BaseSession, dict]:
    """Create a rembg session offline and describe it.

    * ``custom_model_path`` given: a ``u2net_custom`` (``contract="u2net"``) or
      ``dis_custom`` (``contract="dis"``) session on that file, which must lie
      inside ``model_home``; ``model`` is only a label then.
    * otherwise ``model`` must be a rembg registry name whose weights exist at
      ``<model_home>/<name>.onnx`` or ``<model_home>/models/<name>/<name>.onnx``.

    Returns ``(session, info)`` with info keys ``model``, ``rembg_session``,
    ``providers`` (active onnxruntime providers), ``onnxruntime``, ``rembg``.
    """
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    home = Path(os.path.abspath(Path(model_home).expanduser()))
    # Set before any rembg call: rembg reads these at session-creation time.
    os.environ["U2NET_HOME"] = str(home)
    os.environ["OMP_NUM_THREADS"] = str(threads)

    import onnxruntime as ort
    from rembg import new_session

    kwargs: dict = {}
    if custom_model_path is not None:
        if contract not in CUSTOM_CONTRACTS:
            raise ValueError(
                f"unknown custom-model contract {contract!r}; choose one of {sorted(CUSTOM_CONTRACTS)}"
            )
        session_name = CUSTOM_CONTRACTS[contract]
        path = Path(os.path.abspath(Path(custom_model_path).expanduser()))
        if not _inside(path, home):
            raise ValueError(
                f"custom model {path} is outside the model home {home}: rembg (>= 2.0.75) only "
                f"loads custom models inside U2NET_HOME; copy or symlink it to {home / path.name}"
            )
        if not path.is_file():
            raise FileNotFoundError(f"custom model file not found: {path}")
        kwargs["model_path"] = str(path)
    else:
        valid = registry_models()
        if model not in valid:
            raise ValueError(
                f"unknown rembg model {model!r}; valid names: {', '.join(valid)} "
                f"(or pass custom_model_path= with contract in {sorted(CUSTOM_CONTRACTS)})"
            )
        session_name = model
        candidates = [home / f"{model}.onnx", home / "models" / model / f"{model}.onnx"]
        if not any(p.is_file() for p in candidates):
            url = release_url(model)
            how = (
                f"download {url} and save it as {candidates[0]}"
                if url
                else f"run `rembg d {model}` on a networked machine and copy the result to {candidates[0]}"
            )
            raise FileNotFoundError(
                f"rembg weights for {model!r} not found (no network access is attempted): "
                f"expected {candidates[0]} or {candidates[1]}; {how}"
            )

    sess_opts = ort.SessionOptions()
    sess_opts.intra_op_num_threads = threads
    sess_opts.inter_op_num_threads = threads
    providers = list(providers) if providers is not None else default_providers()
    session = new_session(session_name, sess_opts=sess_opts, providers=providers, **kwargs)
    info = {
        "model": model,
        "rembg_session": type(session).__name__,
        "providers": list(session.inner_session.get_providers()),
        "onnxruntime": ort.__version__,
        "rembg": _pkg_version("rembg"),
    }
    return session, info
