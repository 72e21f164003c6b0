"""Fetch rembg weights into the project-local model home, checked against rembg's checksums.

The only place the pipeline touches the network (a local rule), so mask jobs and dry
runs never do. The file appears at its final path only after its checksum matched.
"""

from __future__ import annotations

import hashlib
import logging
import time
import urllib.request
from pathlib import Path

from ..atomic import atomic_file
from ..errors import PipelineError
from .registry import DERIVED_WEIGHTS, REMBG_WEIGHTS, weights_checksum, weights_url

log = logging.getLogger(__name__)


class FetchError(PipelineError):
    """Weights could not be obtained; the message says what to place where."""


def _download(url: str, tmp: Path, algo: str, timeout: float) -> str:
    h = hashlib.new(algo)
    with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as f:
        while block := response.read(1 << 20):
            h.update(block)
            f.write(block)
    return h.hexdigest()


def fetch_file(url: str, dest: Path, checksum: str, *, retries: int = 3, timeout: float = 60.0,
               backoff: float = 5.0) -> dict:
    """Download ``url`` to ``dest`` (atomic) when its ``algo:hex`` checksum matches; retry on failure."""
    dest = Path(dest)
    algo, expected = checksum.split(":", 1)
    last = "no attempt made"
    for attempt in range(1, max(1, retries) + 1):
        try:
            start = time.perf_counter()
            with atomic_file(dest) as tmp:
                got = _download(url, tmp, algo, timeout)
                if got != expected:
                    raise ValueError(f"{algo} {got} != published {expected} (truncated or changed download)")
            seconds = time.perf_counter() - start
            log.info("fetched %s -> %s (%s ok, %.1f s, attempt %d)", url, dest, algo, seconds, attempt)
            return {"url": url, "path": str(dest), "checksum": checksum, "attempts": attempt,
                    "bytes": dest.stat().st_size, "seconds": round(seconds, 2)}
        except (OSError, ValueError) as err:  # URLError, timeouts and HTTP errors are OSErrors
            last = f"{type(err).__name__}: {err}"
            log.warning("attempt %d/%d for %s failed: %s", attempt, retries, url, last)
            if attempt < retries:
                time.sleep(backoff * attempt)
    raise FetchError(
        f"could not fetch {url} after {retries} attempt(s) ({last}); without network, download it on "
        f"another machine, check its {checksum} and place it at {dest}"
    )


def convert_fp16(source: Path, dest: Path) -> dict:
    """rembg's birefnet-general-fp16: float16 conversion of birefnet-general (keeps float32 I/O)."""
    try:
        import onnx
        from onnxconverter_common import float16
    except ImportError:
        raise FetchError(
            f"birefnet-general-fp16 is converted locally from {source}; this needs onnxconverter-common "
            f"(`pip install 'rembg[fp16]'`), or place a converted file at {dest}"
        ) from None
    dest = Path(dest)
    with atomic_file(dest) as tmp:
        onnx.save(float16.convert_float_to_float16(onnx.load(str(source)), keep_io_types=True), str(tmp))
    return {"source": str(source), "path": str(dest), "converted": "float16"}


def fetch_weights(model: str, dest: Path, *, source: Path | None = None, retries: int = 3,
                  timeout: float = 60.0, backoff: float = 5.0, mirror: str | None = None) -> dict:
    """Obtain rembg registry model ``model`` as ``dest``.

    ``mirror``: a base URL (``https://…``, ``file:///…``) holding the release files under
    their release names, instead of rembg's GitHub releases; the checksum is the same.
    """
    if model in DERIVED_WEIGHTS:
        if source is None:
            raise FetchError(f"{model} is converted from {DERIVED_WEIGHTS[model]}: fetch that first")
        return convert_fp16(Path(source), Path(dest))
    if model not in REMBG_WEIGHTS:
        raise FetchError(
            f"{model!r} is not a downloadable rembg model; choose one of {', '.join(sorted(REMBG_WEIGHTS))}"
        )
    url = f"{mirror.rstrip('/')}/{REMBG_WEIGHTS[model][0]}" if mirror else weights_url(model)
    return fetch_file(url, Path(dest), weights_checksum(model), retries=retries, timeout=timeout, backoff=backoff)
