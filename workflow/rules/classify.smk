# Classification: one job per (experiment, seed).


rule train_classifier:
    input:
        images=run_images,
        manifest=run_dataset_file("manifest.tsv"),
        classes=run_dataset_file("classes.json"),
    output:
        metrics="results/runs/classification/{exp}/seed-{seed}/metrics.json",
        history="results/runs/classification/{exp}/seed-{seed}/history.csv",
        model="results/runs/classification/{exp}/seed-{seed}/model.pt",
        predictions="results/runs/classification/{exp}/seed-{seed}/predictions.npz",
    params:
        experiment=experiment,
    threads: COMPUTE["threads_per_job"]
    resources:
        gpu=COMPUTE["gpu"],
        mem_mb=4000,
        runtime=240,
    conda:
        CONDA_ENV
    log:
        "results/logs/train_classifier/{exp}/seed-{seed}.log",
    benchmark:
        "results/benchmarks/train_classifier/{exp}/seed-{seed}.tsv"
    script:
        "../scripts/train_classifier.py"
