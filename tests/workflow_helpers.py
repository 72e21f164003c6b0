"""Shared helpers for end-to-end tests: run the real Snakefile on a tiny demo config."""
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def tiny_config():
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["demo"].update(fs14_per_class=8, modanet_train=24, modanet_val=4, sod_train=40)
    config["saliency"]["standin"]["epochs"] = 6
    config["datasets"]["fashionstyle14"]["store_size"] = [48, 32]
    config["datasets"]["modanet"]["store_size"] = [64, 64]
    config["classification"]["grid"].update(arch="shallow_cnn", epochs=2)
    config["classification"]["include"] = []  # the demo's toy-size axis rows: covered by the demo itself
    config["classification"]["test_on"] = ["original", "rembg"]
    config["segmentation"]["seeds"] = [0]
    config["segmentation"]["grid"].update(epochs=1, batch_size=4)
    config["report"]["examples"] = 3
    config["controls"]["enabled"] = False  # their own end-to-end test (test_controls_e2e.py)
    return config


def snakemake(workdir, *args, check=True):
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(Path(workdir) / "tiny.yaml"), "--cores", "2", *args]
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=workdir)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-8000:]}")
    return result


def planned_jobs(dry_run_output: str) -> dict[str, int]:
    """Job counts per rule from the 'Job stats' table of a dry run."""
    table = dry_run_output.split("Job stats:")[1] if "Job stats:" in dry_run_output else ""
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m.group(1) != "total"}


