# Segmentation: one job per (experiment, seed) trains the model and tests it.


rule train_segmenter:
    """Train one (experiment, seed), then test the model on its own condition and every test_on
    condition (one process: the imports are paid once). Resumes from results/checkpoints/ after a
    crash or kill; a rerun on the same training inputs (e.g. test_on changed) only tests."""
    input:
        images=run_images,
        classmaps=run_dataset_file("classmaps.npy"),
        manifest=run_dataset_file("manifest.tsv"),
        classes=run_dataset_file("classes.json"),
        pretrained=pretrained_input,
        test_images=test_images,
    output:
        model=paths.run_file("segmentation", "{exp}", "{seed}", "model.pt"),
        history=paths.run_file("segmentation", "{exp}", "{seed}", "history.csv"),
        metrics=paths.run_file("segmentation", "{exp}", "{seed}", "metrics.json"),
        predictions=paths.run_file("segmentation", "{exp}", "{seed}", "predictions.npz"),
    log:
        "results/logs/train_segmenter/{exp}/seed-{seed}.log",
    benchmark:
        "results/benchmarks/train_segmenter/{exp}/seed-{seed}.tsv"
    priority: job_priority("segmentation")
    conda:
        CONDA_ENV
    threads: job_threads("segmentation")
    resources:
        **job_resources("segmentation"),
    params:
        experiment=experiment,
        # Not an output: Snakemake must not delete it when the job fails.
        checkpoint=paths.run_checkpoint("segmentation", "{exp}", "{seed}"),
        torch_home=TORCH_HOME,
        conditions=run_conditions,
    script:
        "../scripts/train_segmenter.py"
