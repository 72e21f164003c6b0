# Instance segmentation (Mask R-CNN, COCO AP): one job per (experiment, seed) trains the model and tests it.


rule train_instance:
    """Train one (experiment, seed), then test the model on its own condition and every test_on
    condition (one process: the imports are paid once). Resumes from results/checkpoints/ after a
    crash or kill; a rerun on the same training inputs (e.g. test_on changed) only tests."""
    input:
        unpack(run_instance_store),
        images=run_images,
        manifest=run_dataset_file("manifest.tsv"),
        pretrained=pretrained_input,
        test_images=test_images,
    output:
        model=paths.run_file("instance", "{exp}", "{seed}", "model.pt"),
        history=paths.run_file("instance", "{exp}", "{seed}", "history.csv"),
        metrics=paths.run_file("instance", "{exp}", "{seed}", "metrics.json"),
        predictions=paths.run_file("instance", "{exp}", "{seed}", "predictions.npz"),
        coco=directory(paths.run_file("instance", "{exp}", "{seed}", "coco")),
    log:
        "results/logs/train_instance/{exp}/seed-{seed}.log",
    benchmark:
        "results/benchmarks/train_instance/{exp}/seed-{seed}.tsv"
    priority: job_priority("instance")
    conda:
        CONDA_ENV
    threads: job_threads("instance")
    resources:
        **job_resources("instance"),
    params:
        experiment=experiment,
        # Not an output: Snakemake must not delete it when the job fails.
        checkpoint=paths.run_checkpoint("instance", "{exp}", "{seed}"),
        torch_home=TORCH_HOME,
        conditions=run_conditions,
    script:
        "../scripts/train_instance.py"
