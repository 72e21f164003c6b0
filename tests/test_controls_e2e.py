"""End-to-end: `snakemake controls` on a small config, and learning where learning is guaranteed."""

import json

import pytest
import yaml

from fashion_rembg.reporting.controls import COLUMNS, read_controls

from workflow_helpers import reuse_standin_model, snakemake, tiny_config

pytestmark = pytest.mark.e2e


def controls_config() -> dict:
    config = tiny_config()
    config["segmentation"]["enabled"] = False
    # Enough images and epochs that the shortcut's background is surely learnt, still seconds per run
    # (measured with 15 epochs: its original run's val top-1 0.83 after epoch 4, 0.88 after epoch 8).
    config["demo"].update(fs14_per_class=16, clutter=1.0, bg_label_correlation=0.0)
    config["classification"]["grid"].update(width=16, epochs=5, batch_size=16, lr=0.003)
    config["classification"]["seeds"] = [0]
    config["controls"] = {
        "enabled": True,
        "seeds": [0],
        "sets": {
            "mechanism": {"expected": "rembg_better"},
            "null": {"expected": "no_difference", "clutter": 0.0, "compare": "oracle"},
            "moderate": {"expected": "dose", "clutter": 0.5},
            "shortcut": {"expected": "original_better", "bg_label_correlation": 1.0},
        },
    }
    return config


@pytest.fixture(scope="module")
def workdir(tiny_standin, tmp_path_factory):
    work = tmp_path_factory.mktemp("controls")
    config = controls_config()
    (work / "tiny.yaml").write_text(yaml.safe_dump(config))
    # More styles, same saliency training set: the session's stand-in model is the one this demo trains.
    snakemake(work, f"{config['demo']['out_dir']}/demo_info.json")
    assert reuse_standin_model(tiny_standin, work)
    snakemake(work, "controls")
    return work


def test_controls_table_has_one_row_per_control_and_the_dose_response(workdir):
    # At this size (16 images per style, one seed) the verdicts themselves are too noisy to assert;
    # the default demo's controls (README) are sized to pass. Here: the table is there and well formed.
    table = read_controls(workdir / "results" / "tables" / "controls.csv")
    assert list(table.columns) == COLUMNS
    # one row per set in config order (the YAML dump here sorts them), the dose-response last
    assert list(table["control"]) == ["mechanism", "moderate", "null", "shortcut", "dose_response"]
    assert set(table["verdict"]) <= {"pass", "fail", "level"}
    assert (table["ci_low"] <= table["delta"]).all() and (table["delta"] <= table["ci_high"]).all()
    assert table["p_value"].between(0, 1).all()
    md = (workdir / "results" / "tables" / "controls.md").read_text()
    assert "| shortcut | original_better |" in md
    assert (workdir / "results" / "figures" / "dose_response.png").stat().st_size > 10_000
    # generated side by side, not in separate checkouts
    for name in ("null", "moderate", "shortcut"):
        info = json.loads((workdir / "resources" / "demo" / "controls" / name / "demo_info.json").read_text())
        assert info["args"]["only_fashionstyle14"] is True
    assert (workdir / "results" / "data" / "control-null" / "images.npy").is_file()


def test_shortcut_background_is_learnt_far_above_chance(workdir):
    """With bg_label_correlation 1 the background names the style: a model that learns anything must
    be far above chance (1/14 = 0.071) on original images. A model stuck at chance fails this."""
    table = read_controls(workdir / "results" / "tables" / "controls.csv").set_index("control")
    assert table.loc["shortcut", "original_top1"] >= 0.5, table.loc["shortcut"]
    assert table.loc["shortcut", "delta"] < 0  # and removing that background costs accuracy
