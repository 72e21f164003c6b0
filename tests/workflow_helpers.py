"""Shared helpers for end-to-end tests: run the real Snakefile on a tiny demo config."""
import os
import re
import shutil
import subprocess
import sys
from base64 import urlsafe_b64encode
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
    config["instance"]["enabled"] = False  # its own end-to-end test (test_instance_workflow.py)
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



def copy_run(run: Path, dest: Path) -> Path:
    """A copy of a finished run directory that Snakemake still sees as up to date: copytree keeps the
    mtimes (copy2) and .snakemake/metadata holds the provenance records, keyed by relative path."""
    shutil.copytree(run, dest, symlinks=True)
    return dest


def reuse_standin_model(run: Path, work: Path) -> bool:
    """Give `work` the stand-in SOD model that `run` trained, with Snakemake's record of that job, so
    train_standin_sod is not run again. Only when `work`'s demo (already generated) has the same
    saliency training set byte for byte and the same stand-in settings: training is seeded and
    deterministic, so the job would write the same bytes. Returns whether the model was reused."""
    config, ours = (yaml.safe_load((d / "tiny.yaml").read_text()) for d in (run, work))
    if config["saliency"]["standin"] != ours["saliency"]["standin"]:
        return False
    sod, our_sod = (Path(d, c["demo"]["out_dir"], "sod_train") for d, c in ((run, config), (work, ours)))
    files = sorted(p.relative_to(sod) for p in sod.rglob("*") if p.is_file())
    if files != sorted(p.relative_to(our_sod) for p in our_sod.rglob("*") if p.is_file()) or any(
            (sod / f).read_bytes() != (our_sod / f).read_bytes() for f in files):
        return False
    home, our_home = config["saliency"]["model_home"], ours["saliency"]["model_home"]
    models = sorted(Path(run, home).glob("*.onnx"))
    if home != our_home or not models:
        return False
    for model in models:
        relative = f"{home}/{model.name}"
        Path(work, home).mkdir(parents=True, exist_ok=True)
        shutil.copy(model, work / relative)  # a fresh mtime: newer than the demo it was "trained" on
        record = urlsafe_b64encode(relative.encode()).decode()
        (work / ".snakemake" / "metadata").mkdir(parents=True, exist_ok=True)
        shutil.copy(run / ".snakemake" / "metadata" / record, work / ".snakemake" / "metadata" / record)
    return True
