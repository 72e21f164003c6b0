# Classification: one training job and one evaluation job per (experiment, seed); ImageNet weights.


if STANDIN_WEIGHTS:

    rule standin_pretrained_weights:
        """Demo only (compute.pretrained_standin): seeded random weights in torchvision's file
        format, so the offline demo runs init: imagenet through the real loading code."""
        output:
            f"{TORCH_HOME}/hub/checkpoints/{{weights_file}}",
        wildcard_constraints:
            weights_file=file_pattern(STANDIN_WEIGHTS),
        conda:
            CONDA_ENV
        log:
            "results/logs/pretrained_weights/{weights_file}.log",
        script:
            "../scripts/pretrained_weights.py"

if FETCH_WEIGHTS:

    rule fetch_torchvision_weights:
        """Missing torchvision ImageNet weights into the project-local TORCH_HOME (checked against
        the sha256 prefix in the file name); offline, the error says which file to place where."""
        output:
            f"{TORCH_HOME}/hub/checkpoints/{{weights_file}}",
        wildcard_constraints:
            weights_file=file_pattern(FETCH_WEIGHTS),
        localrule: True
        retries: 2
        conda:
            CONDA_ENV
        log:
            "results/logs/pretrained_weights/{weights_file}.log",
        script:
            "../scripts/pretrained_weights.py"


rule train_classifier:
    """Train one (experiment, seed); resumes from results/checkpoints/ after a crash or kill."""
    input:
        images=run_images,
        manifest=run_dataset_file("manifest.tsv"),
        classes=run_dataset_file("classes.json"),
        pretrained=pretrained_input,
    output:
        model="results/runs/classification/{exp}/seed-{seed}/model.pt",
        history="results/runs/classification/{exp}/seed-{seed}/history.csv",
    params:
        experiment=experiment,
        # Not an output: Snakemake must not delete it when the job fails.
        checkpoint="results/checkpoints/classification/{exp}/seed-{seed}",
        torch_home=TORCH_HOME,
    threads: job_threads("classification")
    resources:
        **job_resources("classification", "train"),
    conda:
        CONDA_ENV
    log:
        "results/logs/train_classifier/{exp}/seed-{seed}.log",
    benchmark:
        "results/benchmarks/train_classifier/{exp}/seed-{seed}.tsv"
    script:
        "../scripts/train_classifier.py"


rule evaluate_classifier:
    """Test one trained model on its own condition and on every test_on condition (cross matrix)."""
    input:
        model="results/runs/classification/{exp}/seed-{seed}/model.pt",
        manifest=run_dataset_file("manifest.tsv"),
        classes=run_dataset_file("classes.json"),
        images=test_images,
    output:
        metrics="results/runs/classification/{exp}/seed-{seed}/metrics.json",
        predictions="results/runs/classification/{exp}/seed-{seed}/predictions.npz",
    params:
        experiment=experiment,
        conditions=run_conditions,
    threads: job_threads("classification")
    resources:
        **job_resources("classification", "eval"),
    conda:
        CONDA_ENV
    log:
        "results/logs/evaluate_classifier/{exp}/seed-{seed}.log",
    benchmark:
        "results/benchmarks/evaluate_classifier/{exp}/seed-{seed}.tsv"
    script:
        "../scripts/evaluate_classifier.py"
