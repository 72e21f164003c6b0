"""Mask sets, the rembg weights registry, fetching, sessions' errors, shard plan and gather."""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from fashion_rembg.errors import ConfigError, PipelineError
from fashion_rembg.paths import sod_model_path, sod_spec
from fashion_rembg.preflight import check_sources, rembg_weight_problems, standin_models
from fashion_rembg.saliency import registry
from fashion_rembg.saliency.fetch import FetchError, fetch_file, fetch_weights
from fashion_rembg.saliency.registry import validate_saliency
from fashion_rembg.saliency.sessions import MissingWeightsError, SaliencyModelError, open_session
from fashion_rembg.saliency.stage import gather_masks, plan_shards, shard_ranges

ROOT = Path(__file__).resolve().parents[1]


def load(name="config.yaml"):
    return yaml.safe_load((ROOT / "config" / name).read_text())



# ------------------------------------------------------------------ rembg registry (pinned facts)


def test_weights_table_matches_rembg_sources():
    """URLs and checksums come from rembg's own session classes (the pinned 2.0.86)."""
    from importlib.metadata import version

    from rembg.sessions import sessions

    assert version("rembg") == registry.REMBG_VERSION
    for name, (file, checksum) in registry.REMBG_WEIGHTS.items():
        src = inspect.getsource(sessions[name].download_models)
        assert f"{registry.RELEASES}/{file}" in src, name
        assert f'"{checksum}"' in src, name
    downloadable = {
        n for n, c in sessions.items()
        if c.is_local() and "pooch.retrieve" in inspect.getsource(c.download_models)
    }
    assert downloadable - {"sam"} == set(registry.REMBG_WEIGHTS)


def test_registry_models_are_the_local_single_file_ones():
    names = registry.registry_models()
    for expected in ("u2net", "u2netp", "u2net_human_seg", "u2net_cloth_seg", "silueta", "isnet-general-use",
                     "birefnet-general", "birefnet-general-fp16", "bria-rmbg"):
        assert expected in names
    for excluded in ("sam", "withoutbg", "atlascloud", "u2net_custom", "dis_custom", "ben_custom"):
        assert excluded not in names


# ------------------------------------------------------------------ mask sets


def test_plain_model_name_is_a_mask_set_with_defaults():
    config = load()
    spec = sod_spec(config, "u2netp")
    assert spec["kind"] == "registry" and spec["session"] == "u2netp" and spec["file"] == "u2netp.onnx"
    assert spec["options"] == registry.MASK_OPTIONS
    custom = sod_spec(config, "demo-sod")
    assert custom["kind"] == "custom" and custom["session"] == "u2net_custom" and custom["contract"] == "u2net"
    config["saliency"]["post_process"] = True
    assert sod_spec(config, "u2netp")["options"]["post_process"] is True
    json.dumps(spec)  # params must serialise


def test_named_mask_sets_carry_their_options():
    config = load()
    config["saliency"]["mask_sets"] = {
        "u2-bin": {"model": "u2net", "threshold": 128},
        "dis-pp": {"model": "demo-sod", "post_process": True, "alpha_matting": True},
        "cloth": {"model": "u2net_cloth_seg", "cloth_category": "full"},
    }
    specs = validate_saliency(config)
    assert specs["u2-bin"]["options"]["threshold"] == 128 and specs["u2-bin"]["model"] == "u2net"
    assert specs["dis-pp"]["options"]["alpha_matting"] and specs["dis-pp"]["kind"] == "custom"
    assert specs["cloth"]["options"]["cloth_category"] == "full"
    assert sod_model_path(config, "u2-bin").endswith("rembg_models/u2net.onnx")
    assert sod_spec(config, "oracle") == {"name": "oracle", "kind": "oracle"}


@pytest.mark.parametrize(
    "mask_sets, custom, message",
    [
        ({"oracle": {"model": "u2net"}}, {}, "reserved for the true foreground masks"),
        ({}, {"oracle": {"file": "o.onnx"}}, "reserved"),
        ({"x": {"model": "nope"}}, {}, "unknown model 'nope'.*u2netp"),
        ({"x": {"model": "sam"}}, {}, "prompts"),
        ({"x": {"model": "withoutbg"}}, {}, "cloud"),
        ({"x": {"model": "u2net_custom"}}, {}, "custom_models"),
        ({"x": {"model": "u2net", "threshold": 0}}, {}, "threshold.*1..255"),
        ({"x": {"model": "u2net", "cloth_category": "full"}}, {}, "only meaningful for u2net_cloth_seg"),
        ({"x": {"model": "u2net_cloth_seg"}}, {}, "cloth_category"),
        ({"u2net": {"model": "u2netp"}}, {}, "must use that model"),
        ({}, {"u2net": {"file": "mine.onnx"}}, "is a rembg model name"),
        ({}, {"mine": {"file": "/elsewhere/mine.onnx"}}, "outside the model home"),
        ({}, {"mine": {"file": "../mine.onnx"}}, "outside the model home"),
        ({}, {"mine": {"file": "u2net.onnx"}}, "file name of rembg's"),
    ],
)
def test_bad_mask_sets_are_config_errors(mask_sets, custom, message):
    config = load()
    config["saliency"]["mask_sets"] = mask_sets
    config["saliency"]["custom_models"].update(custom)
    with pytest.raises(ConfigError, match=message):
        validate_saliency(config)


def test_unknown_sod_lists_the_choices():
    config = load()
    with pytest.raises(ConfigError) as err:
        sod_spec(config, "u3net")
    msg = str(err.value)
    assert "u3net" in msg and "demo-sod-bin" in msg and "u2netp" in msg and "oracle" in msg
    config["saliency"]["model"] = "u3net"
    with pytest.raises(ConfigError, match="saliency.model"):
        validate_saliency(config)


def test_weights_path_layouts_and_standin_names(tmp_path):
    config = load()
    config["saliency"]["model_home"] = str(tmp_path)
    assert sod_model_path(config, "u2net") == str(tmp_path / "u2net.onnx")  # fetched here
    nested = tmp_path / "models" / "u2net" / "u2net.onnx"
    nested.parent.mkdir(parents=True)
    nested.write_bytes(b"x")
    assert sod_model_path(config, "u2net") == str(nested)  # rembg >= 2.0.80 layout, placed by hand
    with pytest.raises(ConfigError, match="oracle"):
        sod_model_path(config, "oracle")
    assert standin_models(config) == ["demo-sod"]


def test_missing_weights_say_what_to_place_where(tmp_path):
    config = load("paper.yaml")
    config["saliency"]["model_home"] = str(tmp_path / "models")
    config["saliency"]["custom_models"] = {"mine": {"file": "mine.onnx", "contract": "dis"}}
    problems = "\n".join(rembg_weight_problems(config, ["u2net", "isnet", "mine", "oracle", "birefnet-general-fp16"]))
    assert str(tmp_path / "models" / "u2net.onnx") in problems
    assert "https://github.com/danielgatis/rembg/releases/download/v0.0.0/u2net.onnx" in problems
    assert "md5:60024c5c889badc19c04ad937298a77b" in problems
    assert str(tmp_path / "models" / "isnet-general-use.onnx") in problems
    assert str(tmp_path / "models" / "mine.onnx") in problems and "[N, 3, 1024, 1024]" in problems
    assert "rembg[fp16]" in problems
    assert str(tmp_path / "models" / "u2net.onnx") in "\n".join(check_sources(config))
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "u2net.onnx").write_bytes(b"x")
    assert rembg_weight_problems(config, ["u2net"]) == []
    demo = load()  # the demo's trained stand-in is not a problem
    assert rembg_weight_problems(demo) == []


def test_schema_accepts_mask_sets_and_rejects_bad_ones():
    import jsonschema

    # The saliency section only: other sections belong to other stages.
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    schema = schema["properties"]["saliency"]
    for name in ("config.yaml", "paper.yaml"):
        jsonschema.validate(load(name)["saliency"], schema)
    bad = load()["saliency"]
    bad["mask_sets"]["x"] = {"model": "u2net", "threshold": 300}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    bad = load()["saliency"]
    bad["mask_sets"]["x"] = {"model": "u2net", "thresold": 3}
    with pytest.raises(jsonschema.ValidationError, match="thresold"):
        jsonschema.validate(bad, schema)
    bad = load()["saliency"]
    bad["device"] = "tpu"
    with pytest.raises(jsonschema.ValidationError, match="tpu"):
        jsonschema.validate(bad, schema)


# ------------------------------------------------------------------ sessions: clear errors


def test_session_errors_are_clear(tmp_path, no_network, monkeypatch):
    monkeypatch.setenv("U2NET_HOME", str(tmp_path))
    with pytest.raises(SaliencyModelError, match="unknown rembg model 'sam' \\(needs encoder"):
        open_session("sam", tmp_path)
    with pytest.raises(MissingWeightsError) as err:
        open_session("isnet-general-use", tmp_path)
    assert isinstance(err.value, PipelineError)  # the workflow log shows the message only
    assert str(tmp_path / "isnet-general-use.onnx") in str(err.value) and "fetch_rembg_weights" in str(err.value)
    with pytest.raises(SaliencyModelError, match="outside the model home"):
        open_session("x", tmp_path / "home", custom_model_path=tmp_path / "x.onnx")
    assert no_network == []


# ------------------------------------------------------------------ fetch (file:// only, no network)


def test_fetch_checks_the_checksum_and_writes_atomically(tmp_path):
    src = tmp_path / "mirror" / "u2netp.onnx"
    src.parent.mkdir()
    src.write_bytes(b"weights" * 1000)
    md5 = hashlib.md5(src.read_bytes()).hexdigest()
    dest = tmp_path / "home" / "u2netp.onnx"
    info = fetch_file(src.as_uri(), dest, f"md5:{md5}", retries=2, backoff=0)
    assert dest.read_bytes() == src.read_bytes() and info["attempts"] == 1
    dest.unlink()
    with pytest.raises(FetchError) as err:
        fetch_file(src.as_uri(), dest, "md5:" + "0" * 32, retries=2, backoff=0)
    msg = str(err.value)
    assert "after 2 attempt(s)" in msg and str(dest) in msg and "md5:" + "0" * 32 in msg
    assert not dest.exists() and list(dest.parent.iterdir()) == []  # nothing partial left
    with pytest.raises(FetchError, match="place it at"):
        fetch_file((tmp_path / "missing.onnx").as_uri(), dest, f"md5:{md5}", retries=1, backoff=0)


def test_fetch_weights_uses_the_published_checksum(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "u2netp.onnx").write_bytes(b"not the real u2netp")
    with pytest.raises(FetchError, match="8e83ca70e441ab06c318d82300c84806"):
        fetch_weights("u2netp", tmp_path / "u2netp.onnx", mirror=mirror.as_uri(), retries=1, backoff=0)
    with pytest.raises(FetchError, match="not a downloadable rembg model"):
        fetch_weights("sam", tmp_path / "sam.onnx", retries=1)


# ------------------------------------------------------------------ shards


def test_plan_and_gather_tile_the_store(tmp_path):
    imgs = np.random.default_rng(0).integers(0, 256, (7, 5, 4, 3), dtype=np.uint8)
    np.save(tmp_path / "images.npy", imgs)
    plan = plan_shards(tmp_path / "images.npy", tmp_path / "shards.json", shard_size=3)
    assert plan["shards"] == [[0, 3], [3, 6], [6, 7]]
    assert shard_ranges(tmp_path / "shards.json") == [(0, 3), (3, 6), (6, 7)]
    masks = np.random.default_rng(1).integers(0, 256, (7, 5, 4), dtype=np.uint8)
    npys, jsons = [], []
    base = {"mask_set": {"name": "m"}, "model": "m", "rembg_session": "S", "device": "cpu",
            "providers_requested": ["CPUExecutionProvider"], "threads": 1, "weights": "w",
            "weights_checksum": {}, "onnxruntime": "x", "rembg": "y", "batch_size": 2, "dynamic_batch": True,
            "vectorised": True, "prefetch": True, "workers": 1, "options": {}, "providers": ["CPUExecutionProvider"],
            "fallback": False, "session_seconds": 0.1, "host": "h", "mask_input": "store"}
    for a, b in reversed(plan["shards"]):  # order of the inputs does not matter
        np.save(tmp_path / f"{a}-{b}.npy", masks[a:b])
        (tmp_path / f"{a}-{b}.json").write_text(json.dumps({
            **base, "start": a, "stop": b, "seconds": 1.0, "images_per_second": b - a,
            "provider": "CPUExecutionProvider"}))
        npys.append(tmp_path / f"{a}-{b}.npy")
        jsons.append(tmp_path / f"{a}-{b}.json")
    info = gather_masks(npys, jsons, tmp_path / "images.npy", tmp_path / "out" / "masks.npy",
                        tmp_path / "out" / "session.json")
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "masks.npy"), masks)
    assert info["images"] == 7 and info["mask_input"] == "store" and [s["start"] for s in info["shards"]] == [0, 3, 6]
    assert info["images_per_second"] == pytest.approx(7 / 3, rel=1e-3)
    with pytest.raises(ValueError, match="do not tile"):
        gather_masks(npys[:1] + npys[2:], jsons[:1] + jsons[2:], tmp_path / "images.npy",
                     tmp_path / "o2.npy", tmp_path / "o2.json")


def test_mask_options_in_spec_are_deterministic():
    config = load()
    a = sod_spec(copy.deepcopy(config), "demo-sod-bin")
    b = sod_spec(copy.deepcopy(config), "demo-sod-bin")
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    assert re.fullmatch(r"[A-Za-z0-9_.\-]+", a["name"])
