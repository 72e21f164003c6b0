"""Job resources from the config: per-task overrides, auto time limits from throughput, the bill."""
import math

import pytest

from fashion_rembg import bill, job_resources
from fashion_rembg.config import experiment_runs

from workflow_helpers import ROOT, planned_jobs, snakemake, tiny_config

SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
TABLE = ROOT / "benchmarks" / "throughput.tsv"


def _compute(**overrides):
    compute = {"gpu": 1, "threads_per_job": 4, "mem_mb": 16000, "runtime": "auto", "runtime_safety": 2.0,
               "runtime_overhead": 10, "runtime_fallback": 240, "device_kind": "auto", "eval_runtime": 60,
               "classification": {"gpu": None, "threads_per_job": None, "mem_mb": None, "runtime": None},
               "segmentation": {"gpu": None, "threads_per_job": 8, "mem_mb": 32000, "runtime": None}}  # fmt: skip
    compute.update(overrides)
    return compute


def _table(tmp_path, rows):
    path = tmp_path / "throughput.tsv"
    lines = ["\t".join(job_resources.THROUGHPUT_FIELDS)] + ["\t".join(map(str, row)) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    job_resources.read_throughput.cache_clear()
    return path


def _manifest(tmp_path, train, val, test=5):
    path = tmp_path / "manifest.tsv"
    rows = ["id\tsource\tsplit\tlabel"] + [f"{i}\tx\t{s}\ta" for i, s in
                                            enumerate(["train"] * train + ["val"] * val + ["test"] * test)]  # fmt: skip
    path.write_text("\n".join(rows) + "\n")
    job_resources._split_counts.cache_clear()
    return path


EXP = {"arch": "resnet18", "epochs": 30, "input_size": None, "width": None, "blocks": None}


def test_task_overrides_replace_only_what_they_set():
    compute = _compute()
    assert job_resources.task_compute(compute, "classification") == {"gpu": 1, "threads_per_job": 4,
                                                                     "mem_mb": 16000, "runtime": "auto"}
    assert job_resources.task_compute(compute, "segmentation") == {"gpu": 1, "threads_per_job": 8,
                                                                   "mem_mb": 32000, "runtime": "auto"}
    assert job_resources.device_kind(_compute(gpu=0), "classification") == "cpu"
    assert job_resources.device_kind(_compute(device_kind="h200"), "classification") == "h200"


def test_auto_limit_from_throughput_epochs_and_images(tmp_path):
    table = _table(tmp_path, [("gpu", "classification", "resnet18", 224, 224, 1000.0, "H100", "measured")])
    manifest = _manifest(tmp_path, train=9000, val=3000)
    est = job_resources.training_estimate(_compute(), "classification", EXP, [112, 224], "fashionstyle14",
                                          manifest, table)  # fmt: skip
    # Half the pixels of the measured 224²: twice the rate; val images count a third.
    expected = 30 * (9000 + 3000 / 3) / 2000 / 60
    assert est["expected_min"] == pytest.approx(expected)
    assert est["limit_min"] == math.ceil(expected * 2.0 + 10)
    assert "2000.0 images/s" in est["how"] and "9000 train + 3000 val" in est["data"]


def test_flat_limits_and_missing_rows(tmp_path):
    table = _table(tmp_path, [("gpu", "classification", "resnet18", 224, 224, 1000.0, "H100", "measured")])
    manifest = _manifest(tmp_path, train=100, val=10)
    flat = job_resources.training_estimate(_compute(runtime=90), "classification", EXP, [224, 224], "fashionstyle14",
                                           manifest, table)  # fmt: skip
    assert flat["limit_min"] == 90 and flat["expected_min"] is not None
    unknown = job_resources.training_estimate(_compute(), "classification", {**EXP, "arch": "vit_b_16"},
                                              [224, 224], "fashionstyle14", manifest, table)  # fmt: skip
    assert unknown["expected_min"] is None and unknown["limit_min"] == 240
    assert "no gpu throughput for classification/vit_b_16" in unknown["how"]


def test_unprepared_dataset_counts_its_published_size(tmp_path):
    images, note = job_resources.epoch_images("modanet", tmp_path / "missing.tsv")
    assert images == 55_176 and "published size" in note


def test_malformed_table_names_the_line(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text(
        "\t".join(job_resources.THROUGHPUT_FIELDS) + "\ngpu\tclassification\tresnet18\t224\t224\tfast\tx\ty\n"
    )
    job_resources.read_throughput.cache_clear()
    with pytest.raises(job_resources.ThroughputError, match="bad.tsv line 2"):
        job_resources.read_throughput(str(path))


def test_paper_bill_covers_every_training_job(tmp_path):
    config = bill.load_config(ROOT / "config" / "paper.yaml", SCHEMA)
    job_resources.read_throughput.cache_clear()
    rules = bill.bill(config, TABLE, tmp_path)
    runs = experiment_runs(config)
    assert rules["train_classifier"]["jobs"] == sum(task == "classification" for task, _, _ in runs)
    assert rules["train_segmenter"]["jobs"] == sum(task == "segmentation" for task, _, _ in runs)
    assert "evaluate_classifier" not in rules  # the run job trains and tests
    # Every architecture of the paper has a throughput row: no flat fallback limits.
    assert not rules["train_classifier"]["unknown"] and not rules["train_segmenter"]["unknown"]
    for name in ("train_classifier", "train_segmenter"):
        assert 0 < rules[name]["expected_h"] < rules[name]["limit_h"]
    text = bill.render(rules)
    assert "train_classifier" in text and "total" in text


def test_dry_run_jobs_declare_the_configured_resources(tmp_path):
    """A SLURM user sets compute.* and compute.<task>.* and never edits a rule."""
    import yaml

    config = tiny_config()
    config["segmentation"]["enabled"] = False
    config["classification"]["seeds"] = [0]
    config["compute"].update(gpu=0, mem_mb=3000, runtime="auto", eval_runtime=7,
                             classification={"mem_mb": 5000, "threads_per_job": 2})  # fmt: skip

    def train_block(eval_runtime: int) -> str:
        config["compute"]["eval_runtime"] = eval_runtime
        (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
        out = snakemake(tmp_path, "-n", "--workflow-profile", "none").stdout
        assert planned_jobs(out)["train_classifier"] == 2 and "evaluate_classifier" not in out
        return {block.split(":")[0]: block for block in out.split("\nrule ")[1:]}["train_classifier"]

    def limit(block: str) -> int:
        return int(block.split("runtime=")[1].split(",")[0])

    train = train_block(7)
    assert "threads: 2" in train and "mem_mb=5000" in train and "gpu=0" in train
    assert 10 + 7 <= limit(train) < 30 + 7  # a tiny job: the overhead (+ its tests), not the 240-minute fallback
    assert limit(train_block(107)) == limit(train) + 100  # the tests' minutes are added to the training limit


def test_run_priority_longest_first_below_the_pipeline(tmp_path):
    table = _table(tmp_path, [("gpu", "classification", arch, 224, 224, rate, "x", "measured")
                              for arch, rate in (("resnet18", 20.0), ("shallow_cnn-w16b3", 250.0))])
    manifest = _manifest(tmp_path, train=3000, val=1000)

    def priority(arch: str, epochs: int) -> int:
        exp = {"arch": arch, "width": 16, "blocks": 3, "batch_norm": True, "epochs": epochs}
        est = job_resources.training_estimate(_compute(), "classification", exp, [224, 224], "d", manifest, table)
        return job_resources.run_priority(est)

    assert priority("shallow_cnn", 10) < priority("shallow_cnn", 20) < priority("resnet18", 10)
    # no throughput row: assumed long, still after the pipeline's data and mask jobs
    assert priority("vgg19", 1) == job_resources.UNKNOWN_RUN_PRIORITY < job_resources.PIPELINE_PRIORITY
    assert priority("resnet18", 10**6) == job_resources.UNKNOWN_RUN_PRIORITY  # capped


@pytest.mark.parametrize("name", ["config.yaml", "paper.yaml", "mine.yaml"])
def test_every_shipped_classification_and_segmentation_run_has_throughput_rows(name):
    """Without a row a run gets the unknown-run priority and the fallback time limit (Mask R-CNN has
    none on purpose); benchmarks/throughput_table.py's MODELS must follow the shipped configs."""
    import yaml
    from snakemake.utils import validate

    from fashion_rembg.config import experiment_table

    config = yaml.safe_load((ROOT / "config" / name).read_text())
    validate(config, str(SCHEMA))
    job_resources.read_throughput.cache_clear()
    table = job_resources.read_throughput(str(TABLE))
    missing = {(kind, exp["task"], job_resources.model_names(exp)[0])
               for exp in experiment_table(config).values() if exp["task"] in ("classification", "segmentation")
               for kind in ("cpu", "gpu")
               if not any((kind, exp["task"], arch) in table for arch in job_resources.model_names(exp))}
    assert not missing, f"{TABLE}: no row for {sorted(missing)}; add them to benchmarks/throughput_table.py MODELS"


def test_dry_run_orders_pipeline_jobs_then_long_runs(tmp_path):
    """The demo's plan: data/mask jobs first, then runs longest first (Mask R-CNN and U-Net have no
    CPU throughput row or a large one; ResNet-18 before the main grid's shallow CNNs)."""
    import yaml

    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    out = snakemake(tmp_path, "-n", "--workflow-profile", "none").stdout
    priorities = {}
    for block in out.split("\nrule ")[1:] + out.split("\nlocalrule ")[1:]:
        rule = block.split(":")[0]
        # The main grid's 16-epoch shallow CNNs apart from the no-batch-norm row (w24b3, 32 epochs): FLOP
        # scaling from the 224² row underestimates ResNet-18 at 48×32 (per-layer overhead), so that row
        # is estimated longer than the ResNet-18 pair although it runs shorter.
        arch = next((a for a in ("maskrcnn", "unet", "resnet18-", "shallow_cnn-w16b3", "shallow_cnn-w24b3")
                     if f"-{a}" in block), None)  # fmt: skip
        value = int(block.split("priority: ")[1].split()[0]) if "priority: " in block else 0
        priorities.setdefault((rule, arch), set()).add(value)
    critical = {job_resources.CRITICAL_PRIORITY}
    assert priorities[("demo_data", None)] == priorities[("train_standin_sod", None)] == critical
    assert priorities[("composite", None)] == {job_resources.PIPELINE_PRIORITY}
    shallow = priorities[("train_classifier", "shallow_cnn-w16b3")]
    resnet = priorities[("train_classifier", "resnet18-")]
    assert 0 < max(shallow) < min(resnet) and max(resnet) < job_resources.PIPELINE_PRIORITY
    # A throughput row, so not the unknown-run priority of Mask R-CNN.
    assert 0 < max(priorities[("train_classifier", "shallow_cnn-w24b3")]) < job_resources.UNKNOWN_RUN_PRIORITY
    assert min(priorities[("train_instance", "maskrcnn")] | priorities[("train_segmenter", "unet")]) > max(resnet)


def test_job_environment_sets_both_malloc_thresholds_unless_the_user_set_one():
    environ = {"PATH": "/bin"}
    assert job_resources.set_job_environment(environ) and environ == {"PATH": "/bin", **job_resources.MALLOC_ENV}
    assert int(environ["MALLOC_MMAP_THRESHOLD_"]) == 32 * 2**20  # glibc's largest mmap threshold
    # Either one alone was slower than glibc's defaults: a user's own setting is left exactly as it is.
    mine = {"MALLOC_TRIM_THRESHOLD_": "0"}
    assert not job_resources.set_job_environment(mine) and mine == {"MALLOC_TRIM_THRESHOLD_": "0"}
