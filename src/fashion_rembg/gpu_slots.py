"""GPU slots: concurrent jobs of one run get distinct GPUs (or share one, `jobs_per_gpu`).

Snakemake only counts `--resources gpu=N`; it never says *which* GPU a job should use, so without
this every job lands on cuda:0. Each GPU job claims one (device, slot) pair by taking an exclusive
`fcntl.flock` on a lock file; the kernel drops the lock when the process exits, also on a crash or
`kill -9`, so a slot can never leak. Slots are tried slot-major (slot 0 of every device first), so
jobs spread over the GPUs before two share one.

Lock files live under ``<root>/<host>[-slurm<job id>]/``: the namespace is "the GPUs this machine or
SLURM allocation owns". Jobs of the slurm executor each get their own allocation (SLURM isolates
their GPUs), so they never wait on each other; local jobs inside one `salloc` share it.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_ROOT = Path(".snakemake/gpu-slots")


@dataclass(frozen=True)
class Slot:
    index: int  # CUDA ordinal in this process (cuda:<index>)
    name: str  # the device's entry in CUDA_VISIBLE_DEVICES (or its ordinal): the lock is per physical GPU
    slot: int
    path: Path
    fd: int


class NoFreeSlot(RuntimeError):
    """Every slot is taken and the caller asked not to wait."""


def namespace(root: Path | str = DEFAULT_ROOT) -> Path:
    job = os.environ.get("SLURM_JOB_ID")
    return Path(root) / (socket.gethostname() + (f"-slurm{job}" if job else ""))


def device_names(count: int) -> list[str]:
    """Names of the visible devices: CUDA_VISIBLE_DEVICES entries (ids or UUIDs) or the ordinals."""
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    return visible[:count] if len(visible) >= count else [str(i) for i in range(count)]


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def try_claim(names: list[str], jobs_per_gpu: int, lock_dir: Path | str) -> Slot | None:
    """Take the first free (device, slot), slot-major; None when all are held."""
    if jobs_per_gpu < 1:
        raise ValueError(f"compute.jobs_per_gpu must be >= 1, got {jobs_per_gpu}")
    lock_dir = Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    for slot in range(jobs_per_gpu):
        for index, name in enumerate(names):
            path = lock_dir / f"gpu-{_safe(name)}.slot-{slot}.lock"
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            # Who holds it, for a person looking at a busy machine (the lock, not the text, is the truth).
            os.ftruncate(fd, 0)
            os.write(fd, f"pid {os.getpid()} cuda:{index}\n".encode())
            return Slot(index, name, slot, path, fd)
    return None


def claim(names: list[str], jobs_per_gpu: int = 1, lock_dir: Path | str | None = None, *,
          wait: bool = True, poll_s: float = 1.0) -> Slot:
    """Claim a slot, waiting for one to free up (another run or a too-large `--resources gpu`)."""
    lock_dir = namespace() if lock_dir is None else Path(lock_dir)
    if not names:
        raise ValueError("no GPU to claim a slot on")
    waited = False
    while (found := try_claim(names, jobs_per_gpu, lock_dir)) is None:
        if not wait:
            raise NoFreeSlot(f"all {len(names)} × {jobs_per_gpu} GPU slots under {lock_dir} are taken")
        if not waited:
            log.warning("all %d GPU(s) × %d slot(s) under %s are taken; waiting for one to free up "
                        "(is --resources gpu larger than GPUs × compute.jobs_per_gpu?)",
                        len(names), jobs_per_gpu, lock_dir)
            waited = True
        time.sleep(poll_s)
    log.info("GPU slot: cuda:%d (device %s, slot %d, lock %s)", found.index, found.name, found.slot, found.path)
    return found


def release(slot: Slot) -> None:
    with contextlib.suppress(OSError):
        os.close(slot.fd)  # closing the descriptor drops the flock


# Process-wide state: one job = one process = at most one slot, claimed when a GPU is first needed.
_jobs_per_gpu = 1
_held: Slot | None = None


def configure(jobs_per_gpu: int) -> None:
    global _jobs_per_gpu
    if jobs_per_gpu < 1:
        raise ValueError(f"compute.jobs_per_gpu must be >= 1, got {jobs_per_gpu}")
    _jobs_per_gpu = int(jobs_per_gpu)


def job_gpu(count: int) -> int:
    """This job's CUDA ordinal among `count` visible devices (claimed once, held until exit)."""
    global _held
    if _held is None:
        _held = claim(device_names(count), _jobs_per_gpu)
    return _held.index


def release_held() -> None:
    global _held
    if _held is not None:
        release(_held)
        _held = None


@contextlib.contextmanager
def gpu_slots(jobs_per_gpu: int = 1):
    """Scope of one job in a `script:`: GPU users inside claim their slot lazily (CPU jobs never do)."""
    configure(jobs_per_gpu)
    try:
        yield
    finally:
        release_held()
