"""Checkpoints and model files (like timm's ``CheckpointSaver``, one file per run): the job
fingerprint, the per-epoch resumable checkpoint, and the trained-model payload.

Both are written atomically and read with ``weights_only=True``: nothing read back can run code.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Sequence

import torch

from fashion_rembg.atomic import atomic_file, write_bytes, write_json, write_text
from fashion_rembg.training.loop import TRAIN_STATE_KEYS, TrainState

__all__ = ["CHECKPOINT_NAME", "FINISHED_NAME", "Checkpointer", "input_fingerprint", "load_model_payload",
           "model_payload"]

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "last.pt"
FINISHED_NAME = "finished.pt"


def input_fingerprint(experiment: dict, seed: int, inputs: Sequence[Path | str | None]) -> str:
    """Identity of a training job: its spec, seed and input files (size, mtime). A checkpoint is
    only resumed by the same job on the same inputs; a rerun after new inputs starts over."""
    files = []
    for p in inputs:
        if p is None:
            continue
        st = Path(p).stat()
        files.append([str(p), st.st_size, st.st_mtime_ns])
    text = json.dumps({"experiment": experiment, "seed": int(seed), "inputs": files}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class Checkpointer:
    """``<directory>/last.pt``: the TrainState after the last finished epoch, written atomically,
    plus ``last.json``: a plain-JSON sidecar with the job fingerprint and the .pt file's sha256.

    The sidecar is written before the .pt and names both the new file and the one it replaces
    (``previous``), so a kill at any moment (a preempted SLURM job) leaves a .pt the sidecar vouches
    for: the new one, or the previous epoch's.

    It lives outside the job's declared outputs (Snakemake deletes those when a job fails), so a
    rerun after a crash or ``kill -9`` resumes from it. Once the model file exists it is replaced
    by ``finished.pt`` (a hard link to the model file, so no extra disk while both exist) and
    ``finished.json`` (fingerprint, hash, the history): a rerun of the same job on the same inputs,
    e.g. after ``test_on`` changed, reuses the trained model and only runs the tests.
    The .pt files are only used when the sidecar matches this job and the file's hash, and then
    read with ``weights_only=True``: a file planted at that path can never run code.
    """

    def __init__(self, directory: Path | str, fingerprint: str) -> None:
        self.path = Path(directory) / CHECKPOINT_NAME
        self.sidecar = self.path.with_suffix(".json")
        self.finished = Path(directory) / FINISHED_NAME
        self.finished_sidecar = self.finished.with_suffix(".json")
        self.fingerprint = fingerprint
        self._on_disk: dict | None = None  # sha256/bytes/epoch of the last.pt this job wrote or resumed from

    def save(self, state: TrainState) -> None:
        buf = io.BytesIO()
        torch.save(state.state_dict(), buf)
        data = buf.getvalue()
        entry = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "epoch": state.epoch}
        # Sidecar first, vouching for the new file and the one still in place: no moment without a match.
        write_json(self.sidecar, {"fingerprint": self.fingerprint, **entry, "previous": self._on_disk})
        write_bytes(self.path, data)
        self._on_disk = entry

    def _start_over(self, why: str) -> bool:
        log.warning("not resuming from checkpoint %s: %s; starting over from epoch 1", self.path, why)
        return False

    def restore(self, state: TrainState) -> bool:
        if not self.path.is_file():
            return False
        try:
            meta = json.loads(self.sidecar.read_text())
            fingerprint = meta["fingerprint"]
            entries = [{"sha256": str(e["sha256"]), "bytes": int(e["bytes"]), "epoch": e.get("epoch")}
                       for e in (meta, meta.get("previous")) if e is not None]  # fmt: skip
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            return self._start_over(f"its sidecar {self.sidecar.name} is missing or unreadable ({exc})")
        if fingerprint != self.fingerprint:
            return self._start_over("it belongs to other settings or inputs")
        size = self.path.stat().st_size
        if size not in {e["bytes"] for e in entries}:  # checked before reading: it could be any (huge) file
            return self._start_over(f"its size differs from the {entries[0]['bytes']} bytes in {self.sidecar.name}")
        data = self.path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        matched = next((e for e in entries if e["sha256"] == digest and e["bytes"] == size), None)
        if matched is None:
            return self._start_over(
                f"its sha256 does not match {self.sidecar.name} (modified or not written by this pipeline)"
            )
        try:
            payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any foreign content: refuse it, never execute it
            return self._start_over(f"it holds more than tensors and plain values ({type(exc).__name__})")
        missing = sorted(TRAIN_STATE_KEYS - set(payload)) if isinstance(payload, dict) else ["(not a dict)"]
        if missing:
            return self._start_over(f"it is not a training state (missing {missing})")
        try:
            state.load_state_dict(payload)
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:
            # Half-applied by now: continuing would not be a fresh start either.
            raise RuntimeError(f"checkpoint {self.path} matches this job but does not fit its model ({exc}); "
                               f"delete {self.path.parent} and rerun") from exc  # fmt: skip
        self._on_disk = matched
        log.info("resumed from %s after epoch %d", self.path, state.epoch)
        return True

    def clear(self) -> None:
        self._on_disk = None
        self.path.unlink(missing_ok=True)
        self.sidecar.unlink(missing_ok=True)
        try:
            self.path.parent.rmdir()
        except OSError:
            pass

    def finish(self, model_out: Path | str, history_out: Path | str) -> None:
        """Keep the finished run (model file and history) for :meth:`reuse`; drop the resumable state."""
        self.clear()
        data = Path(model_out).read_bytes()
        _link_or_copy(Path(model_out), self.finished)
        write_json(self.finished_sidecar, {"fingerprint": self.fingerprint,
                                           "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
                                           "history": Path(history_out).read_text()})  # fmt: skip

    def reuse(self, model_out: Path | str, history_out: Path | str) -> bool:
        """Restore ``model_out`` and ``history_out`` from the finished run of this very job (same
        settings, seed and training inputs); False (train) when there is none or it does not match."""
        if not self.finished.is_file():
            return False
        try:
            meta = json.loads(self.finished_sidecar.read_text())
            fingerprint, digest, history = meta["fingerprint"], meta["sha256"], meta["history"]
            size = int(meta["bytes"])
        except (OSError, ValueError, KeyError, TypeError):
            return False
        if fingerprint != self.fingerprint or self.finished.stat().st_size != size:
            return False
        if hashlib.sha256(self.finished.read_bytes()).hexdigest() != digest:
            log.warning("not reusing %s: its sha256 does not match %s", self.finished, self.finished_sidecar.name)
            return False
        _link_or_copy(self.finished, Path(model_out))
        write_text(Path(history_out), history)
        log.info("reusing the trained model %s: same settings, seed and training inputs; only the tests run",
                 self.finished)
        return True


def _link_or_copy(src: Path, dst: Path) -> None:
    """``dst`` as a hard link to ``src`` (a copy where links are impossible), replaced atomically."""
    with atomic_file(dst) as tmp:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)


# --------------------------------------------------------------------------- model files


def model_payload(
    state: TrainState,
    experiment: dict,
    seed: int,
    classes: list[str],
    device: torch.device,
    pretrained: dict | None = None,
) -> dict:
    payload = {
        "state_dict": state.best_weights,
        "best_epoch": state.best_epoch,
        "epochs_run": state.epoch,
        "stopped_early": state.stopped_early,
        "train_device": device.type,
        "experiment": dict(experiment),
        "seed": int(seed),
        "classes": list(classes),
    }
    if pretrained is not None:  # init: imagenet only, so scratch model files keep their bytes
        payload["pretrained"] = dict(pretrained)
    return payload


def load_model_payload(path: Path | str) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path} (run the training job first)")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or "state_dict" not in payload:
        raise ValueError(f"{path}: not a fashion-rembg model file (expected a dict with 'state_dict')")
    return payload
