"""config/paper.yaml plans the whole study (>= 300 training jobs) against a FashionStyle14-sized
store; the timing itself is measured by benchmarks/paper_dryrun.py."""
from __future__ import annotations

import sys

from workflow_helpers import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
from paper_dryrun import FASHIONPEDIA_IMAGES, FS14_IMAGES, dry_run, fake_paper_workdir  # noqa: E402


def test_paper_dry_run_plans_the_study(tmp_path):
    configfile = fake_paper_workdir(tmp_path)
    manifest = tmp_path / "results" / "data" / "fashionstyle14" / "manifest.tsv"
    assert len(manifest.read_text().splitlines()) == FS14_IMAGES + 1
    fashionpedia = tmp_path / "results" / "data" / "fashionpedia" / "manifest.tsv"
    assert len(fashionpedia.read_text().splitlines()) == FASHIONPEDIA_IMAGES + 1
    seconds, jobs, out = dry_run(tmp_path, configfile)
    assert jobs["train_classifier"] >= 300 and "evaluate_classifier" not in jobs  # one job trains and tests
    assert jobs["train_segmenter"] > 0
    # Instance segmentation on Fashionpedia: Mask R-CNN, scratch vs COCO init, original vs rembg, 3 seeds.
    assert jobs["train_instance"] == 2 * 2 * 3
    assert jobs["figure_per_class_ap"] == 1 and jobs["figure_instance_examples"] == 1
    assert seconds < 10 or dry_run.cpu_seconds < 10, (seconds, dry_run.cpu_seconds)
    # Placed files are sources: nothing is re-fetched or re-prepared.
    for rule in ("fetch_torchvision_weights", "prepare_fashionstyle14", "prepare_modanet", "prepare_fashionpedia",
                 "saliency_plan"):
        assert rule not in jobs, (rule, jobs)
    assert jobs["aggregate"] == 1 and jobs["figure_cross_condition"] == 1
    print(f"paper dry run: {seconds:.1f} s, {jobs['total']} jobs")
