"""Snakemake's scheduler re-evaluation timers are cancelled when the workflow ends (workflow_io)."""
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from fashion_rembg.workflow_io import cancel_scheduler_timers


class JobScheduler:  # the shape of snakemake.scheduling.job_scheduler.JobScheduler's timer
    def _schedule_reevalutation(self, delay):
        timer = threading.Timer(delay, lambda: None)
        timer.start()
        return timer


def test_only_the_schedulers_timers_are_cancelled():
    ours = JobScheduler()._schedule_reevalutation(60)
    other = threading.Timer(60, lambda: None)
    other.start()
    try:
        assert cancel_scheduler_timers() == 1
        ours.join(5)
        assert not ours.is_alive() and other.is_alive()
    finally:
        other.cancel()


def test_a_finished_workflow_exits_without_waiting_for_its_timers(tmp_path):
    """With a 60-s period the real scheduler's timers would hold the process for up to a minute."""
    (tmp_path / "Snakefile").write_text(
        "from fashion_rembg.workflow_io import cancel_scheduler_timers\n"
        "rule all:\n    input: expand('out/{i}.txt', i=range(3))\n"
        "rule one:\n    output: 'out/{i}.txt'\n    shell: 'echo {wildcards.i} > {output}'\n"
        "onsuccess:\n    cancel_scheduler_timers()\n"
    )
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "--max-jobs-per-timespan", "1000/60s"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=50)
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0.txt", "1.txt", "2.txt"]
    assert time.monotonic() - start < 50


def test_the_workflow_cancels_them_when_it_ends_or_fails():
    snakefile = (Path(__file__).resolve().parents[1] / "Snakefile").read_text()
    for hook in ("onsuccess", "onerror"):
        assert re.search(rf"^{hook}:\n    cancel_scheduler_timers\(\)$", snakefile, re.M), f"no {hook} hook"
