# Segmentation: one training job and one evaluation job per (experiment, seed).


rule train_segmenter:
    """Train one (experiment, seed); resumes from results/checkpoints/ after a crash or kill."""
    input:
        images=run_images,
        classmaps=run_dataset_file("classmaps.npy"),
        manifest=run_dataset_file("manifest.tsv"),
        classes=run_dataset_file("classes.json"),
        pretrained=pretrained_input,
    output:
        model=paths.run_file("segmentation", "{exp}", "{seed}", "model.pt"),
        history=paths.run_file("segmentation", "{exp}", "{seed}", "history.csv"),
    log:
        "results/logs/train_segmenter/{exp}/seed-{seed}.log",
    benchmark:
        "results/benchmarks/train_segmenter/{exp}/seed-{seed}.tsv"
    conda:
        CONDA_ENV
    threads: job_threads("segmentation")
    resources:
        **job_resources("segmentation", "train"),
    params:
        experiment=experiment,
        # Not an output: Snakemake must not delete it when the job fails.
        checkpoint=paths.run_checkpoint("segmentation", "{exp}", "{seed}"),
        torch_home=TORCH_HOME,
    script:
        "../scripts/train_segmenter.py"


rule evaluate_segmenter:
    """Test one trained segmenter on its own condition and on every test_on condition."""
    input:
        model=paths.run_file("segmentation", "{exp}", "{seed}", "model.pt"),
        classmaps=run_dataset_file("classmaps.npy"),
        manifest=run_dataset_file("manifest.tsv"),
        classes=run_dataset_file("classes.json"),
        images=test_images,
    output:
        metrics=paths.run_file("segmentation", "{exp}", "{seed}", "metrics.json"),
        predictions=paths.run_file("segmentation", "{exp}", "{seed}", "predictions.npz"),
    log:
        "results/logs/evaluate_segmenter/{exp}/seed-{seed}.log",
    benchmark:
        "results/benchmarks/evaluate_segmenter/{exp}/seed-{seed}.tsv"
    conda:
        CONDA_ENV
    threads: job_threads("segmentation")
    resources:
        **job_resources("segmentation", "eval"),
    params:
        experiment=experiment,
        conditions=run_conditions,
    script:
        "../scripts/evaluate_segmenter.py"
