# Instance segmentation (Mask R-CNN, COCO AP): one training job and one evaluation job per (experiment, seed).


rule train_instance:
    """Train one (experiment, seed); resumes from results/checkpoints/ after a crash or kill."""
    input:
        unpack(run_instance_store),
        images=run_images,
        manifest=run_dataset_file("manifest.tsv"),
        pretrained=pretrained_input,
    output:
        model=paths.run_file("instance", "{exp}", "{seed}", "model.pt"),
        history=paths.run_file("instance", "{exp}", "{seed}", "history.csv"),
    log:
        "results/logs/train_instance/{exp}/seed-{seed}.log",
    benchmark:
        "results/benchmarks/train_instance/{exp}/seed-{seed}.tsv"
    conda:
        CONDA_ENV
    threads: job_threads("instance")
    resources:
        **job_resources("instance", "train"),
    params:
        experiment=experiment,
        # Not an output: Snakemake must not delete it when the job fails.
        checkpoint=paths.run_checkpoint("instance", "{exp}", "{seed}"),
        torch_home=TORCH_HOME,
    script:
        "../scripts/train_instance.py"


rule evaluate_instance:
    """Test one trained Mask R-CNN on its own condition and on every test_on condition; COCO files
    (ground truth + results per IoU type) per condition, re-scorable with plain pycocotools."""
    input:
        unpack(run_instance_store),
        model=paths.run_file("instance", "{exp}", "{seed}", "model.pt"),
        manifest=run_dataset_file("manifest.tsv"),
        images=test_images,
    output:
        metrics=paths.run_file("instance", "{exp}", "{seed}", "metrics.json"),
        predictions=paths.run_file("instance", "{exp}", "{seed}", "predictions.npz"),
        coco=directory(paths.run_file("instance", "{exp}", "{seed}", "coco")),
    log:
        "results/logs/evaluate_instance/{exp}/seed-{seed}.log",
    benchmark:
        "results/benchmarks/evaluate_instance/{exp}/seed-{seed}.tsv"
    conda:
        CONDA_ENV
    threads: job_threads("instance")
    resources:
        **job_resources("instance", "eval"),
    params:
        experiment=experiment,
        conditions=run_conditions,
    script:
        "../scripts/evaluate_instance.py"
