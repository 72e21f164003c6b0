# Classification: one training job and one evaluation job per (experiment, seed).


rule train_classifier:
    """Train one (experiment, seed); resumes from results/checkpoints/ after a crash or kill."""
    input:
        images=run_images,
        manifest=run_dataset_file("manifest.tsv"),
        classes=run_dataset_file("classes.json"),
        pretrained=pretrained_input,
    output:
        model=paths.run_file("classification", "{exp}", "{seed}", "model.pt"),
        history=paths.run_file("classification", "{exp}", "{seed}", "history.csv"),
    log:
        "results/logs/train_classifier/{exp}/seed-{seed}.log",
    benchmark:
        "results/benchmarks/train_classifier/{exp}/seed-{seed}.tsv"
    conda:
        CONDA_ENV
    threads: job_threads("classification")
    resources:
        **job_resources("classification", "train"),
    params:
        experiment=experiment,
        # Not an output: Snakemake must not delete it when the job fails.
        checkpoint=paths.run_checkpoint("classification", "{exp}", "{seed}"),
        torch_home=TORCH_HOME,
    script:
        "../scripts/train_classifier.py"


rule evaluate_classifier:
    """Test one trained model on its own condition and on every test_on condition (cross matrix)."""
    input:
        model=paths.run_file("classification", "{exp}", "{seed}", "model.pt"),
        manifest=run_dataset_file("manifest.tsv"),
        classes=run_dataset_file("classes.json"),
        images=test_images,
    output:
        metrics=paths.run_file("classification", "{exp}", "{seed}", "metrics.json"),
        predictions=paths.run_file("classification", "{exp}", "{seed}", "predictions.npz"),
    log:
        "results/logs/evaluate_classifier/{exp}/seed-{seed}.log",
    benchmark:
        "results/benchmarks/evaluate_classifier/{exp}/seed-{seed}.tsv"
    conda:
        CONDA_ENV
    threads: job_threads("classification")
    resources:
        **job_resources("classification", "eval"),
    params:
        experiment=experiment,
        conditions=run_conditions,
    script:
        "../scripts/evaluate_classifier.py"
