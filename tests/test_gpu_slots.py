"""GPU slot claiming, on CPU with a faked device count: distinct GPUs for concurrent jobs."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from fashion_rembg import gpu_slots
from fashion_rembg.training import loop

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _held(*slots):
    return [(s.index, s.slot) for s in slots]


def test_slots_spread_over_gpus_before_sharing(tmp_path):
    names = ["0", "1"]
    claims = [gpu_slots.try_claim(names, 2, tmp_path) for _ in range(4)]
    assert _held(*claims) == [(0, 0), (1, 0), (0, 1), (1, 1)]
    assert gpu_slots.try_claim(names, 2, tmp_path) is None
    with pytest.raises(gpu_slots.NoFreeSlot, match="all 2 × 2 GPU slots"):
        gpu_slots.claim(names, 2, tmp_path, wait=False)
    gpu_slots.release(claims[1])
    again = gpu_slots.try_claim(names, 2, tmp_path)
    assert (again.index, again.slot) == (1, 0)
    for slot in [*claims, again]:
        gpu_slots.release(slot)


def test_bad_jobs_per_gpu_is_named(tmp_path):
    with pytest.raises(ValueError, match="compute.jobs_per_gpu"):
        gpu_slots.try_claim(["0"], 0, tmp_path)


def test_locks_are_per_physical_device_and_per_allocation(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,1")
    assert gpu_slots.device_names(2) == ["3", "1"]
    slot = gpu_slots.try_claim(gpu_slots.device_names(2), 1, tmp_path)
    assert (slot.index, slot.path.name) == (0, "gpu-3.slot-0.lock")  # cuda:0 of this process is GPU 3
    gpu_slots.release(slot)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert gpu_slots.device_names(2) == ["0", "1"]
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    local = gpu_slots.namespace(tmp_path)
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    assert gpu_slots.namespace(tmp_path) == Path(f"{local}-slurm42")


def _holder(lock_dir: Path, names: list[str], out: Path, hold_s: float, jobs_per_gpu: int = 1) -> subprocess.Popen:
    """A job process: claim a slot (waiting), record when it held which one, hold it, exit."""
    code = textwrap.dedent(f"""
        import json, time
        from fashion_rembg import gpu_slots
        slot = gpu_slots.claim({names!r}, {jobs_per_gpu}, {str(lock_dir)!r}, poll_s=0.02)
        start = time.monotonic()
        print(json.dumps({{"index": slot.index, "slot": slot.slot}}), flush=True)
        time.sleep({hold_s})
        with open({str(out)!r}, "w") as f:
            json.dump({{"key": [slot.name, slot.slot], "start": start, "end": time.monotonic()}}, f)
    """)
    env = dict(os.environ, PYTHONPATH=SRC)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)


def test_a_killed_job_releases_its_slot(tmp_path):
    job = _holder(tmp_path, ["0", "1"], tmp_path / "never.json", hold_s=60)
    assert json.loads(job.stdout.readline()) == {"index": 0, "slot": 0}
    other = gpu_slots.try_claim(["0", "1"], 1, tmp_path)
    assert other.index == 1  # GPU 0 is held by the running job
    assert gpu_slots.try_claim(["0", "1"], 1, tmp_path) is None
    job.send_signal(signal.SIGKILL)  # a crash: no cleanup code runs
    job.wait(timeout=10)
    freed = gpu_slots.claim(["0", "1"], 1, tmp_path, wait=False)
    assert freed.index == 0
    gpu_slots.release(other)
    gpu_slots.release(freed)


def test_concurrent_jobs_never_share_a_slot(tmp_path):
    """Eight jobs start at once on 2 GPUs × 2 slots: at most one job per slot at any moment."""
    outs = [tmp_path / f"job{i}.json" for i in range(8)]
    jobs = [_holder(tmp_path / "locks", ["0", "1"], out, hold_s=0.4, jobs_per_gpu=2) for out in outs]
    for job in jobs:
        assert job.wait(timeout=120) == 0
    runs = [json.loads(out.read_text()) for out in outs]
    by_slot: dict[tuple, list] = {}
    for run in runs:
        by_slot.setdefault(tuple(run["key"]), []).append((run["start"], run["end"]))
    assert set(by_slot) <= {("0", 0), ("1", 0), ("0", 1), ("1", 1)}
    for intervals in by_slot.values():
        intervals.sort()
        for (_, end), (next_start, _) in zip(intervals, intervals[1:]):
            assert next_start >= end, f"two jobs held one slot at once: {intervals}"
    # Four run at a time: the eight 0.4 s jobs cannot have been serialised on one slot.
    assert len(by_slot) == 4


def test_pick_device_uses_the_claimed_gpu(tmp_path, monkeypatch):
    """Faked 2-GPU machine: a job whose first GPU is taken by another job runs on cuda:1."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    chosen = []
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    other_job = gpu_slots.try_claim(["0", "1"], 1, gpu_slots.namespace())
    with gpu_slots.gpu_slots(jobs_per_gpu=1):
        assert loop.pick_device() == torch.device("cuda", 1)
        assert loop.pick_device() == torch.device("cuda", 1)  # claimed once per job
        assert chosen == [1, 1]
        assert gpu_slots.try_claim(["0", "1"], 1, gpu_slots.namespace()) is None
    free = gpu_slots.try_claim(["0", "1"], 1, gpu_slots.namespace())  # released at the end of the job
    assert free.index == 1
    gpu_slots.release(other_job)
    gpu_slots.release(free)


def test_cpu_jobs_claim_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with gpu_slots.gpu_slots(jobs_per_gpu=2):
        assert loop.pick_device() == torch.device("cpu")
    assert not (tmp_path / ".snakemake").exists()


def test_a_waiting_job_starts_when_a_slot_frees(tmp_path):
    first = gpu_slots.try_claim(["0"], 1, tmp_path)
    job = _holder(tmp_path, ["0"], tmp_path / "second.json", hold_s=0)
    time.sleep(0.5)
    assert job.poll() is None  # still waiting for the only slot
    gpu_slots.release(first)
    assert job.wait(timeout=30) == 0
    assert json.loads((tmp_path / "second.json").read_text())["key"] == ["0", 0]
