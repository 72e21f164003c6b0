"""Start-up checks: a custom ONNX model is checked against its contract before any job runs, and a
config with both tasks disabled builds masks, composites and mask quality only."""
import pytest
import yaml
from onnx import TensorProto, helper, save

from fashion_rembg.errors import ConfigError
from fashion_rembg.preflight import check_custom_contracts, custom_contract_problem, onnx_input_size

from test_saliency_contracts import conv_model
from workflow_helpers import ROOT, planned_jobs, snakemake, tiny_config


def _symbolic_model(path):
    x = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["N", 3, "H", "W"])
    y = helper.make_tensor_value_info("d0", TensorProto.FLOAT, ["N", 1, "H", "W"])
    graph = helper.make_graph([helper.make_node("Sigmoid", ["input.1"], ["d0"])], "any_size", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    save(model, str(path))
    return path


def test_input_size_is_read_from_the_graph_without_running_it(tmp_path):
    assert onnx_input_size(conv_model(tmp_path / "a.onnx", 320)) == (320, 320)
    assert onnx_input_size(_symbolic_model(tmp_path / "b.onnx")) == (None, None)
    (tmp_path / "c.onnx").write_bytes(b"not a model")
    with pytest.raises(ConfigError, match="c.onnx: not a readable ONNX model"):
        onnx_input_size(tmp_path / "c.onnx")


def _reference_input_size(path):
    """What the onnx package itself reads (the wire-format reader must agree with it)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    initializers = {init.name for init in model.graph.initializer}
    dims = next(i for i in model.graph.input if i.name not in initializers).type.tensor_type.shape.dim
    return len(dims), tuple(d.dim_value if d.HasField("dim_value") else None for d in dims[2:])


def _model(path, dims, initializer_inputs=False):
    """Sigmoid(x + b) with input dims `dims`; b an initializer, also listed as a graph input (IR < 4 style)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    b = helper.make_tensor("b", TensorProto.FLOAT, [1], [0.5])
    b_info = helper.make_tensor_value_info("b", TensorProto.FLOAT, [1])
    nodes = [helper.make_node("Add", ["x", "b"], ["s"]), helper.make_node("Sigmoid", ["s"], ["y"])]
    inputs = [b_info, x] if initializer_inputs else [x]
    graph = helper.make_graph(nodes, "g", inputs, [y], initializer=[b], doc_string="d" * 300)
    save(helper.make_model(graph, producer_name="tests"), str(path))
    return path


@pytest.mark.parametrize("dims, initializer_inputs", [
    ([1, 3, 320, 320], False), ([None, 3, 1024, 768], True), (["N", 3, "H", 512], True), ([1, 3, 0, -1], False),
])  # fmt: skip
def test_input_size_reader_agrees_with_onnx(tmp_path, dims, initializer_inputs):
    path = _model(tmp_path / "m.onnx", dims, initializer_inputs)
    rank, sides = _reference_input_size(path)
    assert rank == 4 and onnx_input_size(path) == sides
    assert onnx_input_size(conv_model(tmp_path / "c.onnx", 320)) == _reference_input_size(tmp_path / "c.onnx")[1]


def test_input_size_reader_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="m.onnx: input 'x' has 3 axes"):
        onnx_input_size(_model(tmp_path / "m.onnx", [3, 320, 320]))
    whole = _model(tmp_path / "whole.onnx", [1, 3, 320, 320]).read_bytes()
    (tmp_path / "cut.onnx").write_bytes(whole[: len(whole) - 40])  # truncated inside the graph
    with pytest.raises(ConfigError, match="cut.onnx: not a readable ONNX model"):
        onnx_input_size(tmp_path / "cut.onnx")
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(ConfigError, match="empty.onnx: not a readable ONNX model"):
        onnx_input_size(tmp_path / "empty.onnx")
    x = helper.make_tensor_value_info("b", TensorProto.FLOAT, [1])
    graph = helper.make_graph([], "g", [x], [x], initializer=[helper.make_tensor("b", TensorProto.FLOAT, [1], [1.0])])
    save(helper.make_model(graph), str(tmp_path / "none.onnx"))
    with pytest.raises(ConfigError, match="none.onnx: the ONNX graph has no input"):
        onnx_input_size(tmp_path / "none.onnx")


def test_contract_mismatch_says_which_contract_fits(tmp_path):
    big = conv_model(tmp_path / "big.onnx", 1024)
    assert custom_contract_problem("mine", big, "dis") is None
    problem = custom_contract_problem("mine", big, "u2net")
    assert "takes [N, 3, 1024, 1024]" in problem and "contract 'u2net' feeds 320x320" in problem
    assert "saliency.custom_models.mine.contract: dis or ben" in problem
    odd = conv_model(tmp_path / "odd.onnx", 512)
    assert "no rembg contract feeds 512x512" in custom_contract_problem("mine", odd, "u2net")
    assert custom_contract_problem("mine", _symbolic_model(tmp_path / "any.onnx"), "u2net") is None


def _config(home, contract=None):
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    entry = {"file": "mine.onnx"} | ({"contract": contract} if contract else {})
    config["saliency"].update(model="mine", model_home=str(home))
    config["saliency"]["custom_models"]["mine"] = entry
    return config


def test_check_custom_contracts_raises_for_the_model_in_use_only(tmp_path):
    conv_model(tmp_path / "mine.onnx", 1024)
    with pytest.raises(ConfigError, match="saliency.custom_models.mine: .* contract 'u2net' feeds 320x320"):
        check_custom_contracts(_config(tmp_path))  # no contract: means u2net
    check_custom_contracts(_config(tmp_path, "ben"))
    (tmp_path / "mine.onnx").unlink()
    check_custom_contracts(_config(tmp_path))  # missing: reported by rembg_weight_problems instead


@pytest.mark.e2e
def test_custom_model_without_contract_stops_the_dry_run(tmp_path):
    conv_model(tmp_path / "mine.onnx", 1024)
    config = tiny_config()
    config["saliency"].update(model="mine", model_home=str(tmp_path))
    config["saliency"]["custom_models"]["mine"] = {"file": "mine.onnx"}
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    out = snakemake(tmp_path, "-n", check=False)
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert "saliency.custom_models.mine" in text and "contract: dis or ben" in text
    assert "Traceback" not in text


@pytest.mark.e2e
def test_both_tasks_disabled_builds_masks_only(tmp_path):
    config = tiny_config()
    config["classification"]["enabled"] = False
    config["segmentation"]["enabled"] = False
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    jobs = planned_jobs(snakemake(tmp_path, "-n").stdout)
    assert jobs.get("saliency_masks") == 2 and jobs.get("composite") == 2  # fashionstyle14 and modanet
    assert jobs.get("mask_quality") == 2 and jobs.get("figure_mask_quality") == 2
    for rule in ("train_classifier", "train_segmenter", "aggregate", "figure_learning_curves", "figure_examples"):
        assert rule not in jobs


def test_custom_model_sha256_is_checked_by_the_mask_job(tmp_path):
    import hashlib

    from fashion_rembg.paths import sod_spec
    from fashion_rembg.saliency.stage import WeightsChecksumError, check_weights

    path = conv_model(tmp_path / "mine.onnx", 320)
    config = _config(tmp_path, "u2net")
    assert "checksum" not in sod_spec(config, "mine")  # unset: the spec (rule params) is as before
    assert check_weights(sod_spec(config, "mine"), str(path), verify=True)["ok"] is None
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    config["saliency"]["custom_models"]["mine"]["sha256"] = digest
    assert check_weights(sod_spec(config, "mine"), str(path), verify=True)["ok"] is True
    config["saliency"]["custom_models"]["mine"]["sha256"] = "0" * 64
    with pytest.raises(WeightsChecksumError, match="saliency.custom_models.mine.sha256"):
        check_weights(sod_spec(config, "mine"), str(path), verify=True)
