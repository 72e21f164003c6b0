import copy
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from fashion_rembg.config import experiment_table, task_experiments
from fashion_rembg.errors import ConfigError
from fashion_rembg.paths import sod_model_path
from fashion_rembg.preflight import check_sources, standin_models

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


def load(name):
    config = yaml.safe_load((ROOT / "config" / name).read_text())
    validate(config, str(SCHEMA))
    return config


@pytest.mark.parametrize("name", ["config.yaml", "paper.yaml"])
def test_shipped_configs_validate_and_expand(name):
    config = load(name)
    table = experiment_table(config)
    assert table, "no experiments"
    for exp_id, exp in table.items():
        assert exp["id"] == exp_id
        assert exp["variant"] in {"original", "rembg", "oracle"}
        assert (exp["sod"] is None) == (exp["variant"] != "rembg")
        assert (exp["fill"] is None) == (exp["variant"] == "original")


def test_schema_rejects_bad_value_naming_the_key():
    config = load("config.yaml")
    config["saliency"]["fill"] = "purple"
    with pytest.raises(Exception, match="purple"):
        validate(config, str(SCHEMA))
    config = load("config.yaml")
    config["classification"]["grid"]["epochs"] = 0
    with pytest.raises(Exception, match="epochs|minimum"):
        validate(config, str(SCHEMA))


def test_schema_fills_defaults():
    config = load("config.yaml")
    del config["saliency"]["post_process"]
    validate(config, str(SCHEMA))
    assert config["saliency"]["post_process"] is False


def test_fill_change_changes_only_rembg_ids():
    config = load("config.yaml")
    before = experiment_table(config)
    changed = copy.deepcopy(config)
    changed["saliency"]["fill"] = "white"
    after = experiment_table(changed)
    originals = {k for k, v in before.items() if v["variant"] == "original"}
    assert originals == {k for k, v in after.items() if v["variant"] == "original"}
    assert all(before[k] == after[k] for k in originals)
    # Experiments on the default fill get new ids; one with its own fill keeps its id.
    assert {k for k, v in before.items() if v["fill"] == config["saliency"]["fill"]}.isdisjoint(after)
    assert {k for k, v in before.items() if v["fill"] not in (None, config["saliency"]["fill"])} <= set(after)
    assert all(v["fill"] == "white" for v in after.values() if v["variant"] == "rembg")


def test_unknown_dataset_for_task_is_a_config_error():
    config = load("config.yaml")
    config["classification"]["dataset"] = "modanet"
    with pytest.raises(ConfigError, match="classification.dataset"):
        task_experiments(config, "classification")


def test_model_paths_and_standins():
    config = load("config.yaml")
    assert sod_model_path(config, "u2net").endswith("rembg_models/u2net.onnx")
    assert sod_model_path(config, "demo-sod").endswith("rembg_models/demo-sod.onnx")
    assert standin_models(config) == ["demo-sod"]
    config["demo"]["enabled"] = False
    with pytest.raises(ConfigError, match="demo.enabled"):
        standin_models(config)


def test_missing_real_data_says_what_to_place_where(tmp_path):
    config = load("paper.yaml")
    config["datasets"]["fashionstyle14"]["root"] = str(tmp_path / "FashionStyle14_v1")
    config["datasets"]["modanet"]["annotations"] = str(tmp_path / "m.json")
    config["datasets"]["modanet"]["lmdb"] = str(tmp_path / "photos.lmdb")
    config["saliency"]["model_home"] = str(tmp_path / "models")
    problems = "\n".join(check_sources(config))
    assert str(tmp_path / "FashionStyle14_v1") in problems
    assert "modanet2018_instances_train.json" in problems and "photos.lmdb.tar" in problems
    assert str(tmp_path / "models" / "u2net.onnx") in problems
