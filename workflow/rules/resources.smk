# Resources of the heavy jobs, all from the config (fashion_rembg.job_resources): a SLURM user sets
# `compute` / `saliency` and never edits a rule; sbatch options stay in the profile.
from fashion_rembg.job_resources import (
    CRITICAL_PRIORITY,
    PIPELINE_PRIORITY,
    run_priority,
    set_job_environment,
    task_compute,
    training_estimate,
)

set_job_environment()  # malloc thresholds for every job (training steps stop faulting their buffers in)

THROUGHPUT_TABLE = os.path.join(os.path.dirname(workflow.main_snakefile), "benchmarks", "throughput.tsv")


def run_estimate(task, wildcards):
    dataset = config[task]["dataset"]
    return training_estimate(
        COMPUTE,
        task,
        EXPERIMENTS[wildcards.exp],
        DATASET_CONFIG[dataset]["store_size"],
        dataset,
        paths.store(dataset, "manifest.tsv"),
        THROUGHPUT_TABLE,
    )


def training_limit(task):
    """Minutes of a training job's time limit: estimated per experiment, more time on a retry."""

    def runtime(wildcards, attempt):
        return run_estimate(task, wildcards)["limit_min"] * attempt

    return runtime


def job_priority(task):
    """priority: of a run job: the longest expected runs first (after the pipeline jobs)."""
    return lambda wildcards: run_priority(run_estimate(task, wildcards))


def job_resources(task):
    """resources: of a run job of `task`: its training limit plus `compute.eval_runtime` for the tests."""
    merged = task_compute(COMPUTE, task)
    train_limit = training_limit(task)
    return dict(
        gpu=merged["gpu"],
        mem_mb=merged["mem_mb"],
        runtime=lambda wildcards, attempt: train_limit(wildcards, attempt) + COMPUTE["eval_runtime"] * attempt,
    )


def job_threads(task):
    return task_compute(COMPUTE, task)["threads_per_job"]
