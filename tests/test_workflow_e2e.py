"""End-to-end: the real Snakemake DAG on a tiny demo config in a temporary directory."""
import copy
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from workflow_helpers import ROOT, copy_run, planned_jobs, snakemake, tiny_config

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def workdir(tiny_run, tmp_path_factory):
    # The session's tiny pipeline, copied: the tests below change the config and rerun parts of it.
    return copy_run(tiny_run, tmp_path_factory.mktemp("e2e") / "run")


def test_outputs_are_real(workdir):
    results = workdir / "results"
    summary = pd.read_csv(results / "tables" / "summary.csv")
    assert {"classification", "segmentation"} <= set(summary["task"])
    md = (results / "tables" / "summary.md").read_text()
    assert "±" in md and "IoU" in md
    # Every Δ (both tasks) has its CI and p-values; every row its health.
    deltas = summary[summary["variant"] != "original"]
    assert len(deltas) == 2 and deltas[["delta", "ci_low", "ci_high", "p_value", "p_holm"]].notna().all().all()
    assert (deltas["ci_low"] <= deltas["ci_high"]).all()
    assert summary["health"].notna().all() and "unchecked" not in set(summary["health"])
    assert "[95 % CI]" in md and "p (Holm)" in md
    assert "\\bottomrule" in (results / "tables" / "summary.tex").read_text()
    for name in ["variant_bars", "learning_curves", "examples"]:
        with Image.open(results / "figures" / f"{name}.png") as img:
            assert img.width > 200 and img.height > 100
    runs = sorted((results / "runs").glob("*/*/seed-*/metrics.json"))
    assert len(runs) == 2 * 2 + 2 * 1  # shallow_cnn × 2 variants × 2 seeds + unet × 2 variants × 1 seed
    for path in runs:
        metrics = json.loads(path.read_text())
        if metrics["experiment"]["task"] == "classification":
            assert 0.0 <= metrics["metrics"]["top1"] <= 1.0
            assert np.array(metrics["metrics"]["confusion_matrix"]).shape == (14, 14)
        else:
            assert 0.0 <= metrics["metrics"]["miou"] <= 1.0
    for dataset in ["fashionstyle14", "modanet"]:
        quality = json.loads((results / "saliency" / dataset / "demo-sod" / "quality.json").read_text())
        assert quality["mean_iou"] > quality["baseline_iou_all_foreground"], quality
        masks = np.load(results / "saliency" / dataset / "demo-sod" / "masks.npy")
        images = np.load(results / "data" / dataset / "images.npy")
        assert masks.shape == images.shape[:3] and masks.std() > 10
    composite = np.load(results / "rembg" / "fashionstyle14" / "demo-sod" / "black" / "images.npy")
    masks = np.load(results / "saliency" / "fashionstyle14" / "demo-sod" / "masks.npy")
    assert (composite[masks == 0] == 0).all(), "black fill where the mask is 0"
    raw = workdir / "resources" / "demo"
    assert len(list((raw / "FashionStyle14_v1" / "dataset").iterdir())) == 14
    assert (raw / "modanet" / "photos.lmdb" / "data.mdb").is_file()
    assert (workdir / "results" / "logs" / "aggregate.log").is_file()


def test_second_run_does_nothing(workdir):
    out = snakemake(workdir, "-n")
    assert "Nothing to be done" in out.stdout + out.stderr


def test_fill_change_reruns_composites_training_aggregation_not_masks(workdir):
    config = tiny_config()
    config["saliency"]["fill"] = "white"
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(config))
    try:
        jobs = planned_jobs(snakemake(workdir, "-n").stdout)
        assert jobs.get("composite") == 2
        # The rembg runs train again; the original runs are rerun too because their cross-condition
        # tests read the rembg images, but they reuse their trained model and only test.
        assert jobs.get("train_classifier") == 4 and jobs.get("train_segmenter") == 2
        assert jobs.get("aggregate") == 1
        for untouched in ["saliency_masks", "saliency_shard", "saliency_plan", "train_standin_sod",
                          "prepare_fashionstyle14", "demo_data"]:
            assert untouched not in jobs, jobs
        masks = workdir / "results" / "saliency" / "fashionstyle14" / "demo-sod" / "masks.npy"
        before = masks.stat().st_mtime_ns
        snakemake(workdir)
        assert masks.stat().st_mtime_ns == before
        logs = {p.parent.name: p.read_text() for p in (workdir / "results" / "logs").glob("train_*/*/seed-0.log")}
        reused = {exp: "reusing the trained model" in text for exp, text in logs.items()}
        assert logs and all(was_reused == ("-original-" in exp) for exp, was_reused in reused.items()), reused
        white = np.load(workdir / "results" / "rembg" / "fashionstyle14" / "demo-sod" / "white" / "images.npy")
        assert white.max() == 255
        assert "Nothing to be done" in "".join(snakemake(workdir, "-n").stdout)
    finally:
        (workdir / "tiny.yaml").write_text(yaml.safe_dump(tiny_config()))


def test_changed_experiment_reruns_only_itself_and_the_aggregates(workdir):
    # Relative to whatever an earlier test left to do in this workdir.
    before = planned_jobs(snakemake(workdir, "-n").stdout)
    config = tiny_config()
    # The rembg experiment gets one more epoch; the original one is untouched.
    config["classification"]["exclude"] = [{"variant": "rembg"}]
    config["classification"]["include"] = [{"variant": "rembg", "epochs": 3}]
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(config))
    try:
        jobs = planned_jobs(snakemake(workdir, "-n").stdout)
        added = {rule: jobs.get(rule, 0) - before.get(rule, 0) for rule in set(jobs) | set(before)}
        assert added["train_classifier"] == 2  # its 2 seeds
        assert jobs.get("aggregate") == 1 and jobs.get("figure_cross_condition") == 1
        for untouched in [
            "train_segmenter",
            "composite",
            "saliency_masks",
            "prepare_fashionstyle14",
        ]:
            assert added.get(untouched, 0) == 0, (added, jobs)
    finally:
        (workdir / "tiny.yaml").write_text(yaml.safe_dump(tiny_config()))


def test_cross_condition_outputs(workdir):
    cross = pd.read_csv(workdir / "results" / "tables" / "cross_condition.csv")
    cls = cross[cross["task"] == "classification"]
    # Each of the 2 training conditions tested on original and rembg: a full 2 × 2 matrix.
    assert set(zip(cls["variant"], cls["test_variant"])) == {
        (a, b) for a in ("original", "rembg") for b in ("original", "rembg")
    }
    assert "Train on X, test on Y" in (workdir / "results" / "tables" / "summary.md").read_text()
    with Image.open(workdir / "results" / "figures" / "cross_condition.png") as img:
        assert img.width > 300
    run = next((workdir / "results" / "runs" / "classification").glob("*-original-*/seed-0"))
    ckpt = workdir / "results" / "checkpoints" / "classification" / run.parent.name / "seed-0"
    # The resumable state is gone; the finished model is kept (a hard link) for a test-only rerun.
    assert not (ckpt / "last.pt").exists()
    assert (ckpt / "finished.pt").read_bytes() == (run / "model.pt").read_bytes()


def test_bad_config_value_fails_fast_naming_the_key(workdir, tmp_path):
    config = copy.deepcopy(tiny_config())
    config["saliency"]["fill"] = "purple"
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    out = snakemake(tmp_path, "-n", check=False)
    assert out.returncode != 0
    message = out.stdout + out.stderr
    assert "purple" in message and "fill" in message, message


def test_lint_is_clean():
    out = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint", "--snakefile", str(ROOT / "Snakefile")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_report_builds(workdir):
    snakemake(workdir, "--report", "report.html")
    html = (workdir / "report.html").read_text(errors="replace")
    assert "variant_bars.png" in html and "summary" in html
