"""End-to-end: mask sets of two rembg registry models and a custom ONNX build side by side.

Stand-in ONNX files sit in a temp model home under the registry names u2net and
u2netp (so rembg's own U2netSession / U2netpSession load them) and as a custom
u2net-contract model. Switching saliency.model between them builds each mask set
once, never touches the others, and switching back reruns nothing.
"""
import json

import numpy as np
import pytest
import yaml

from test_saliency_contracts import conv_model
from workflow_helpers import ROOT, planned_jobs, snakemake

pytestmark = pytest.mark.e2e
SETS = ["u2net", "u2netp", "mine"]


def config_for(model, home):
    # The demo config at toy size; only mask targets are built, so training settings do not matter.
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["demo"].update(fs14_per_class=8, modanet_train=24, modanet_val=4, sod_train=40)
    config["datasets"]["fashionstyle14"]["store_size"] = [48, 32]
    config["datasets"]["modanet"]["store_size"] = [64, 64]
    config["saliency"].update(
        model=model, model_home=str(home), shard_size=60, batch_size=4, verify_checksums=False,
        fetch={"retries": 1, "timeout": 5, "mirror": (home / "no-mirror").as_uri()},
    )
    config["saliency"]["custom_models"]["mine"] = {"file": "mine.onnx", "contract": "u2net"}
    config["saliency"]["mask_sets"]["mine-bin"] = {"model": "mine", "threshold": 128}
    return config


def targets(model):
    return [f"results/saliency/fashionstyle14/{model}/quality.json",
            f"results/saliency/fashionstyle14/{model}/session.json"]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    work = tmp_path_factory.mktemp("masksets")
    home = work / "models"
    home.mkdir()
    for seed, name in enumerate(["u2net.onnx", "u2netp.onnx", "mine.onnx"]):
        conv_model(home / name, 320, seed=seed)
    return work, home


def run(work, home, model, *args, check=True):
    (work / "tiny.yaml").write_text(yaml.safe_dump(config_for(model, home)))
    return snakemake(work, *args, *targets(model), check=check)


def test_three_mask_sets_side_by_side_and_switching_back_reruns_nothing(work):
    work, home = work
    stamps = {}
    for model in SETS:
        run(work, home, model)
        base = work / "results" / "saliency" / "fashionstyle14" / model
        stamps[model] = base.joinpath("masks.npy").stat().st_mtime_ns
        for other, before in stamps.items():  # earlier mask sets untouched
            assert (work / "results/saliency/fashionstyle14" / other / "masks.npy").stat().st_mtime_ns == before
        session = json.loads(base.joinpath("session.json").read_text())
        assert session["mask_set"]["name"] == model and session["provider"] == "CPUExecutionProvider"
        assert len(session["shards"]) == 2 and session["images"] == 8 * 14
        assert not list(base.glob("shards/*")), "shard files are temporary"
    sessions = {m: json.loads((work / f"results/saliency/fashionstyle14/{m}/session.json").read_text()) for m in SETS}
    assert sessions["u2net"]["rembg_session"] == "U2netSession"
    assert sessions["u2netp"]["rembg_session"] == "U2netpSession"
    assert sessions["mine"]["rembg_session"] == "U2netCustomSession"
    masks = {m: np.load(work / f"results/saliency/fashionstyle14/{m}/masks.npy") for m in SETS}
    assert not np.array_equal(masks["u2net"], masks["u2netp"])  # different weights, different masks
    for model in SETS:  # switching back: nothing to do, for every mask set
        out = run(work, home, model, "-n")
        assert "Nothing to be done" in out.stdout + out.stderr, model
    # A derived mask set (options only) reuses nothing but builds beside the others.
    run(work, home, "mine-bin")
    binary = np.load(work / "results/saliency/fashionstyle14/mine-bin/masks.npy")
    np.testing.assert_array_equal(binary, np.where(masks["mine"] >= 128, 255, 0))
    assert (work / "results/saliency/fashionstyle14/mine/masks.npy").stat().st_mtime_ns == stamps["mine"]


def test_missing_registry_weights_fetch_fails_with_what_to_place_where(work):
    work, home = work
    out = run(work, home, "silueta", "-n")
    assert planned_jobs(out.stdout).get("fetch_rembg_weights") == 1
    assert "rule fetch_rembg_weights will download" in out.stderr and str(home / "silueta.onnx") in out.stderr
    out = run(work, home, "silueta", check=False)
    assert out.returncode != 0
    log = (work / "results/logs/fetch_rembg_weights/silueta.log").read_text()
    assert "could not fetch" in log and f"place it at {home / 'silueta.onnx'}" in log
    assert "md5:55e59e0d8062d2f5d013f4725ee84782" in log
    assert not (home / "silueta.onnx").exists()


def test_bad_mask_set_config_fails_at_start_naming_the_key(work):
    work, home = work
    config = config_for("mine", home)
    config["saliency"]["custom_models"]["mine"]["file"] = "../mine.onnx"
    (work / "tiny.yaml").write_text(yaml.safe_dump(config))
    out = snakemake(work, "-n", check=False)
    assert out.returncode != 0
    assert "saliency.custom_models.mine.file" in out.stdout + out.stderr
    assert "outside the model home" in out.stdout + out.stderr
