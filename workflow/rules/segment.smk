# Segmentation: one job per (experiment, seed).


rule train_segmenter:
    input:
        images=run_images,
        classmaps=run_dataset_file("classmaps.npy"),
        manifest=run_dataset_file("manifest.tsv"),
        classes=run_dataset_file("classes.json"),
    output:
        metrics="results/runs/segmentation/{exp}/seed-{seed}/metrics.json",
        history="results/runs/segmentation/{exp}/seed-{seed}/history.csv",
        model="results/runs/segmentation/{exp}/seed-{seed}/model.pt",
        predictions="results/runs/segmentation/{exp}/seed-{seed}/predictions.npz",
    params:
        experiment=experiment,
    threads: COMPUTE["threads_per_job"]
    resources:
        gpu=COMPUTE["gpu"],
        mem_mb=8000,
        runtime=480,
    conda:
        CONDA_ENV
    log:
        "results/logs/train_segmenter/{exp}/seed-{seed}.log",
    benchmark:
        "results/benchmarks/train_segmenter/{exp}/seed-{seed}.tsv"
    script:
        "../scripts/train_segmenter.py"
