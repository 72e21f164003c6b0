# Config → experiment table, path helpers and wildcard constraints. Logic lives in the package.
import os
import sys

from snakemake.utils import validate

from fashion_rembg.config import experiment_table, seeds
from fashion_rembg.errors import PipelineError
from fashion_rembg.workflow_paths import (
    check_sources,
    sod_model_path,
    standin_models,
)


validate(config, schema="../schemas/config.schema.yaml")

try:
    EXPERIMENTS = experiment_table(config)
    STANDIN_MODELS = standin_models(config)
    for _problem in check_sources(config):
        print(f"fashion-rembg: {_problem}", file=sys.stderr)
except PipelineError as err:
    raise WorkflowError(f"fashion-rembg configuration: {err}")

# One pinned environment for every rule (`--sdm conda`); the same pins as pyproject.toml.
CONDA_ENV = "../../envs/fashion-rembg.yaml"
DEMO_DIR = config["demo"]["out_dir"]
MODEL_HOME = config["saliency"]["model_home"]
SALIENCY = config["saliency"]
COMPUTE = config["compute"]
DATASET_CONFIG = config["datasets"]
TASKS = [task for task in ("classification", "segmentation") if config[task].get("enabled", True)]


wildcard_constraints:
    dataset="fashionstyle14|modanet",
    exp="|".join(EXPERIMENTS) or "NO_EXPERIMENT",
    seed=r"\d+",
    sod=r"[A-Za-z0-9_.\-]+",
    fill=r"[a-z]+",


def experiment(wildcards):
    return EXPERIMENTS[wildcards.exp]


def run_images(wildcards):
    """The image store an experiment trains and tests on: original or rembg composite."""
    exp = EXPERIMENTS[wildcards.exp]
    if exp["variant"] == "rembg":
        return f"results/rembg/{exp['dataset']}/{exp['sod']}/{exp['fill']}/images.npy"
    return f"results/data/{exp['dataset']}/images.npy"


def run_dataset_file(name):
    def pick(wildcards):
        return f"results/data/{EXPERIMENTS[wildcards.exp]['dataset']}/{name}"

    return pick


def mask_model(wildcards):
    return sod_model_path(config, wildcards.sod)


def fs14_split_csvs(wildcards):
    root = DATASET_CONFIG["fashionstyle14"]["root"]
    val = "valid.csv" if os.path.isfile(f"{root}/valid.csv") and not os.path.isfile(f"{root}/val.csv") else "val.csv"
    return [f"{root}/train.csv", f"{root}/{val}", f"{root}/test.csv"]


def custom_model_spec(wildcards):
    return SALIENCY["custom_models"].get(wildcards.sod)


def store_size(wildcards):
    return DATASET_CONFIG[wildcards.dataset]["store_size"]


def truth_dir(wildcards):
    return DATASET_CONFIG[wildcards.dataset]["truth"]


def demo_marker_if_truth(wildcards):
    return [f"{DEMO_DIR}/demo_info.json"] if config["demo"]["enabled"] else []


def task_runs(task, filename):
    return [
        f"results/runs/{task}/{exp_id}/seed-{seed}/{filename}"
        for exp_id, exp in EXPERIMENTS.items()
        if exp["task"] == task
        for seed in seeds(config, task)
    ]


def all_runs(filename):
    return [path for task in TASKS for path in task_runs(task, filename)]


def quality_files():
    """Mask quality for every dataset whose true masks are known."""
    return [
        f"results/saliency/{config[task]['dataset']}/{SALIENCY['model']}/quality.json"
        for task in TASKS
        if DATASET_CONFIG.get(config[task]["dataset"], {}).get("truth")
    ]


def example_dataset():
    return config[TASKS[0]]["dataset"] if TASKS else "fashionstyle14"


def final_outputs():
    outputs = ["results/tables/summary.csv", "results/tables/summary.md"]
    outputs += [
        "results/figures/variant_bars.png",
        "results/figures/learning_curves.png",
        "results/figures/examples.png",
    ]
    return outputs + quality_files()
