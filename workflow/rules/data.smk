# Raw data → prepared stores (manifest + images decoded once at the working resolution).


rule demo_data:
    """Embedded look-alike data, written in the real raw formats of FashionStyle14 and ModaNet."""
    output:
        fs14_csv=expand("{demo}/FashionStyle14_v1/{split}.csv", demo=DEMO_DIR, split=["train", "val", "test"]),
        modanet_train=f"{DEMO_DIR}/modanet/annotations/modanet2018_instances_train.json",
        modanet_val=f"{DEMO_DIR}/modanet/annotations/modanet2018_instances_val.json",
        lmdb=f"{DEMO_DIR}/modanet/photos.lmdb/data.mdb",
        info=f"{DEMO_DIR}/demo_info.json",
    params:
        settings={k: v for k, v in config["demo"].items() if k not in ("enabled", "out_dir")},
    conda:
        CONDA_ENV
    log:
        "results/logs/demo_data.log",
    benchmark:
        "results/benchmarks/demo_data.tsv"
    script:
        "../scripts/demo_data.py"


if "fashionstyle14" in DATASET_CONFIG:

    rule prepare_fashionstyle14:
        input:
            fs14_split_csvs,
        output:
            manifest="results/data/fashionstyle14/manifest.tsv",
            quarantine="results/data/fashionstyle14/quarantine.tsv",
            classes="results/data/fashionstyle14/classes.json",
            images="results/data/fashionstyle14/images.npy",
        params:
            root=DATASET_CONFIG["fashionstyle14"]["root"],
            store_size=DATASET_CONFIG["fashionstyle14"]["store_size"],
        conda:
            CONDA_ENV
        log:
            "results/logs/prepare_fashionstyle14.log",
        benchmark:
            "results/benchmarks/prepare_fashionstyle14.tsv"
        script:
            "../scripts/prepare_fashionstyle14.py"


if "modanet" in DATASET_CONFIG:

    rule prepare_modanet:
        input:
            annotations=DATASET_CONFIG["modanet"]["annotations"],
            lmdb=f"{DATASET_CONFIG['modanet']['lmdb']}/data.mdb",
        output:
            manifest="results/data/modanet/manifest.tsv",
            quarantine="results/data/modanet/quarantine.tsv",
            classes="results/data/modanet/classes.json",
            images="results/data/modanet/images.npy",
            classmaps="results/data/modanet/classmaps.npy",
        params:
            store_size=DATASET_CONFIG["modanet"]["store_size"],
            split=DATASET_CONFIG["modanet"]["split"],
        conda:
            CONDA_ENV
        log:
            "results/logs/prepare_modanet.log",
        benchmark:
            "results/benchmarks/prepare_modanet.tsv"
        script:
            "../scripts/prepare_modanet.py"


rule prepare_truth:
    """True foreground masks aligned with a store (demo), to measure rembg mask quality."""
    input:
        demo_marker_if_truth,
        manifest="results/data/{dataset}/manifest.tsv",
    output:
        "results/data/{dataset}/truth.npy",
    params:
        truth_dir=truth_dir,
        store_size=store_size,
    conda:
        CONDA_ENV
    log:
        "results/logs/prepare_truth/{dataset}.log",
    script:
        "../scripts/prepare_truth.py"
