# Config → experiment table, path helpers and wildcard constraints. Logic lives in the package.
import os
import re
import sys

from snakemake.utils import validate

from fashion_rembg.choices import BUILTIN_DATASETS, FILLS, ORACLE_SOD, TASKS as ALL_TASKS
from fashion_rembg.config import (
    condition_key,
    control_runs,
    evaluation_conditions,
    experiment_runs,
    experiment_table,
)
from fashion_rembg.controls import PREFIX as CONTROL_PREFIX
from fashion_rembg.controls import control_datasets, control_plans
from fashion_rembg.controls import variants as control_variants
from fashion_rembg.controls import generator_settings as control_generator_settings
from fashion_rembg.datasets.instances import INDEX_FILE, INSTANCES_FILE, META_FILE
from fashion_rembg.datasets.own import own_datasets
from fashion_rembg.errors import PipelineError
from fashion_rembg import paths
from fashion_rembg.paths import (
    REMBG_SOD_PATTERN,
    condition_images,
    fetch_inputs,
    file_pattern,
    mask_run_settings,
    pretrained_file,
    pretrained_files,
    quality_inputs,
    rembg_model_pattern,
    shard_paths,
    sod_model_path,
    sod_spec,
)
from fashion_rembg.preflight import (
    check_custom_contracts,
    check_sources,
    missing_pretrained,
    standin_models,
    standin_weights,
)
from fashion_rembg.saliency.registry import validate_saliency

validate(config, schema="../schemas/config.schema.yaml")

try:
    # Own data (datasets.<name> with a kind): checked and completed with its defaults.
    OWN_DATASETS = own_datasets(config)
    config["datasets"].update(OWN_DATASETS)
    # Known-answer control sets are demo datasets generated beside the main one (fashion_rembg.controls).
    config["datasets"].update(control_datasets(config))
    CONTROLS = sorted(name[len(CONTROL_PREFIX) :] for name in control_datasets(config))
    EXPERIMENTS = experiment_table(config)
    CONTROL_RUNS = control_runs(config)
    RUNS = experiment_runs(config)
    STANDIN_WEIGHTS = standin_weights(config)
    # Only missing weights get a fetch job: a file placed by hand is a source, never re-fetched.
    FETCH_WEIGHTS = [p for p in pretrained_files(config) if p not in STANDIN_WEIGHTS and not os.path.isfile(p)]
    STANDIN_MODELS = standin_models(config)
    SOD_SPECS = validate_saliency(config)
    check_custom_contracts(config)  # a custom ONNX model whose input shape contradicts its contract
    for _problem in check_sources(config) + missing_pretrained(config):
        print(f"fashion-rembg: {_problem}", file=sys.stderr)
except PipelineError as err:
    raise WorkflowError(f"fashion-rembg configuration: {err}")

# One pinned environment for every rule (`--sdm conda`); the same pins as pyproject.toml.
CONDA_ENV = "../../envs/fashion-rembg.yaml"
DEMO_DIR = config["demo"]["out_dir"]
MODEL_HOME = config["saliency"]["model_home"]
SALIENCY = config["saliency"]
MASK_RUN = mask_run_settings(config)
REMBG_MODEL_PATTERN = rembg_model_pattern()
COMPUTE = config["compute"]
TORCH_HOME = COMPUTE["torch_home"]
DATASET_CONFIG = config["datasets"]
TASKS = [task for task in ALL_TASKS if config[task].get("enabled", True)]
# Datasets whose masks the default target builds: those of the enabled tasks; with both tasks
# disabled (masks only), those the task sections name.
# (The instance section is opt-in: its schema defaults name a dataset even when it is off.)
MASK_DATASETS = [config[task]["dataset"] for task in (TASKS or ["classification", "segmentation"]) if config.get(task)]
# Datasets of the enabled tasks, sorted (quarantine table).
ENABLED_DATASETS = sorted({config[task]["dataset"] for task in TASKS})
# Datasets an instance experiment trains on: their prepare job also writes the instance store (an
# image either store refuses is quarantined in both, so their rows stay aligned).
INSTANCE_DATASETS = [config["instance"]["dataset"]] if "instance" in TASKS else []


def instance_store(dataset):
    """Files of a dataset's instance store (datasets.instances), in its store folder."""
    return {
        "instances": paths.store(dataset, INSTANCES_FILE),
        "instances_index": paths.store(dataset, INDEX_FILE),
        "instances_meta": paths.store(dataset, META_FILE),
    }


def run_instance_store(wildcards):
    """The instance store of an experiment's dataset (written by its prepare job)."""
    return instance_store(EXPERIMENTS[wildcards.exp]["dataset"])


def instance_outputs(dataset):
    """The instance store as extra outputs of a prepare rule, when an instance experiment needs it."""
    return instance_store(dataset) if dataset in INSTANCE_DATASETS else {}


wildcard_constraints:
    dataset="|".join(
        list(BUILTIN_DATASETS) + [CONTROL_PREFIX + c for c in CONTROLS] + [re.escape(name) for name in OWN_DATASETS]
    ),
    control="|".join(CONTROLS) or "NO_CONTROL",
    exp="|".join(EXPERIMENTS) or "NO_EXPERIMENT",
    seed=r"\d+",
    sod=r"[A-Za-z0-9_.\-]+",
    fill="|".join(FILLS),


def experiment(wildcards):
    return EXPERIMENTS[wildcards.exp]


def run_images(wildcards):
    """The image store an experiment trains on: original, rembg or oracle composite."""
    exp = EXPERIMENTS[wildcards.exp]
    return condition_images(exp["dataset"], exp)


def run_conditions(wildcards):
    """Test conditions of a run (its own first), each with its image store."""
    exp = EXPERIMENTS[wildcards.exp]
    return [dict(c, images=condition_images(exp["dataset"], c)) for c in evaluation_conditions(config, exp)]


def test_images(wildcards):
    return [c["images"] for c in run_conditions(wildcards)]


def pretrained_input(wildcards):
    """ImageNet weights file of an init: imagenet experiment (none for scratch)."""
    path = pretrained_file(config, EXPERIMENTS[wildcards.exp])
    return [path] if path else []


def run_dataset_file(name):
    def pick(wildcards):
        return paths.store(EXPERIMENTS[wildcards.exp]["dataset"], name)

    return pick


def mask_model(wildcards):
    return sod_model_path(config, wildcards.sod)


def mask_spec(wildcards):
    return sod_spec(config, wildcards.sod)


def mask_shards(ext):
    def shards(wildcards):
        plan = checkpoints.saliency_plan.get(dataset=wildcards.dataset).output[0]
        return shard_paths(plan, wildcards.dataset, wildcards.sod, ext)

    return shards


def quality_references(wildcards):
    return quality_inputs(config, wildcards.dataset)


def fetch_source(wildcards):
    return fetch_inputs(config, wildcards.rembg_model)


def mask_quality_figures():
    """Worst/best-mask figures for every measured mask set (true masks or garment class maps)."""
    pairs = set(quality_keys())
    pairs |= {(d, SALIENCY["model"]) for d in MASK_DATASETS if quality_inputs(config, d)}
    return sorted(paths.mask_quality_figure(d, s) for d, s in pairs)


def own_of_kind(kind, instances=None):
    """Wildcard pattern of the own datasets of one kind (datasets.<name>.kind); ``instances``
    True/False: only those that do / do not also get an instance store."""
    names = [
        n
        for n, e in OWN_DATASETS.items()
        if e["kind"] == kind and (instances is None or (n in INSTANCE_DATASETS) == instances)
    ]
    suffix = "" if instances is None else ("_INSTANCES" if instances else "_SEMANTIC")
    return "|".join(re.escape(n) for n in names) or f"NO_{kind.upper()}{suffix}"


def store_size(wildcards):
    return DATASET_CONFIG[wildcards.dataset]["store_size"]


def truth_dir(wildcards):
    return DATASET_CONFIG[wildcards.dataset]["truth"]


def demo_marker_if_truth(wildcards):
    if not config["demo"]["enabled"]:
        return []
    if wildcards.dataset.startswith(CONTROL_PREFIX):
        return [f"{DEMO_DIR}/controls/{wildcards.dataset[len(CONTROL_PREFIX):]}/demo_info.json"]
    if wildcards.dataset == "fashionpedia":
        return [f"{DEMO_DIR}/fashionpedia/demo_info.json"]
    return [f"{DEMO_DIR}/demo_info.json"]


def task_runs(task, filename):
    return [paths.run_file(t, exp_id, seed, filename) for t, exp_id, seed in RUNS if t == task]


def all_runs(filename):
    return [path for task in TASKS for path in task_runs(task, filename)]


def instance_example_pair():
    """The runs the instance example grid shows: the first instance configuration trained on both
    original and rembg images, same seed, as (original exp, rembg exp, seed); None without one."""
    runs = [(EXPERIMENTS[e], seed) for t, e, seed in RUNS if t == "instance"]

    def setting(exp):
        return {k: v for k, v in exp.items() if k not in ("id", "variant", "sod", "fill")}

    for exp, seed in runs:
        if exp["variant"] != "original":
            continue
        for other, other_seed in runs:
            if other["variant"] == "rembg" and other_seed == seed and setting(other) == setting(exp):
                return exp, other, seed
    return None


def instance_example_inputs():
    """Inputs of figure_instance_examples: store images, the rembg composite, both runs' COCO folders."""
    original, rembg, seed = instance_example_pair()
    return {
        "images": paths.store(original["dataset"], "images.npy"),
        "composites": condition_images(rembg["dataset"], rembg),
        "original_coco": paths.run_file("instance", original["id"], seed, "coco"),
        "rembg_coco": paths.run_file("instance", rembg["id"], seed, "coco"),
    }


def quality_keys():
    """(dataset, mask set) of every mask-quality file: datasets in use whose true masks are known."""
    return [(d, SALIENCY["model"]) for d in MASK_DATASETS if DATASET_CONFIG.get(d, {}).get("truth")]


def quality_files():
    """Mask quality for every dataset whose true masks are known."""
    return [paths.mask_set(d, sod, "quality.json") for d, sod in quality_keys()]


def example_dataset():
    return config[TASKS[0]]["dataset"] if TASKS else "fashionstyle14"


def control_predictions():
    """predictions.npz of every control run, by control and variant, in seed order."""
    return {
        f"{name}__{variant}": [
            paths.run_file("classification", spec[variant], seed, "predictions.npz") for seed in spec["seeds"]
        ]
        for name, spec in CONTROL_RUNS.items()
        for variant in control_variants(spec)
    }


CONTROL_OUTPUTS = (
    [paths.table("controls.csv"), paths.table("controls.md"), paths.figure("dose_response.png")] if CONTROL_RUNS else []
)


def mask_outputs():
    """Masks only (both tasks disabled): the default mask set, its composite, its quality."""
    masks = [paths.mask_set(d, SALIENCY["model"]) for d in MASK_DATASETS]
    composites = [paths.composite(d, SALIENCY["model"], SALIENCY["fill"]) for d in MASK_DATASETS]
    return sorted(set(masks + composites)) + quality_files() + mask_quality_figures()


def final_outputs():
    if not TASKS:
        return mask_outputs()
    outputs = [paths.table("summary.csv"), paths.table("summary.md")]
    outputs += [
        paths.figure("variant_bars.png"),
        paths.figure("learning_curves.png"),
        paths.figure("examples.png"),
        paths.table("cross_condition.csv"),
        paths.figure("cross_condition.png"),
        paths.table("quarantine.md"),
    ]
    if "instance" in TASKS:
        outputs.append(paths.figure("instance_per_class_ap.png"))
    if instance_example_pair():
        outputs.append(paths.figure("instance_examples.png"))
    return outputs + quality_files() + mask_quality_figures() + CONTROL_OUTPUTS
