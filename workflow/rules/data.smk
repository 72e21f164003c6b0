# Raw data → prepared stores (manifest + images decoded once at the working resolution).
#
# fetch_<dataset>_<key> (download a distributed file) → extract_<name> (checked, safe extraction)
# [→ extract_modanet_images: annotated photos out of the LMDB, bytes unchanged] → prepare_<dataset>.
# Which of these exist is decided at start-up from what is on disk
# (fashion_rembg.datasets.sources.plan): an existing folder is used as is, a finished extraction is
# reused even after its archive was deleted, so nothing is downloaded or extracted twice.
#
# fetch/extract use one-line `run:` blocks, not `script:`: Snakemake reruns a script rule whenever
# the script file is newer than its output (e.g. after a git pull), which here would delete a
# hand-placed archive or repeat a 40 GB download. No `conda:` either (an edited env file would
# trigger the same). Downloads are `protected` (read-only): a forced rerun stops instead of
# deleting them.
from fashion_rembg.datasets.sources import extract_modanet_images, extract_raw, fetch_raw, job_log
from fashion_rembg.datasets.sources import plan as plan_sources
from fashion_rembg.datasets.sources import track_raw_changes
from fashion_rembg.demo import demo_settings, fashionpedia_settings

try:
    SOURCES = plan_sources(config) | control_plans(config)
    track_raw_changes(config, SOURCES)  # a changed raw image folder re-prepares its dataset
except PipelineError as err:
    raise WorkflowError(f"fashion-rembg configuration: {err}")
PREPARE_THREADS = config["compute"]["prepare_threads"]  # decode workers; capped at --cores locally


rule demo_data:
    """Embedded look-alike data, written in the real raw formats of FashionStyle14 and ModaNet."""
    output:
        fs14_csv=expand("{demo}/FashionStyle14_v1/{split}.csv", demo=DEMO_DIR, split=["train", "val", "test"]),
        modanet_train=f"{DEMO_DIR}/modanet/annotations/modanet2018_instances_train.json",
        modanet_val=f"{DEMO_DIR}/modanet/annotations/modanet2018_instances_val.json",
        lmdb=f"{DEMO_DIR}/modanet/photos.lmdb/data.mdb",
        info=f"{DEMO_DIR}/demo_info.json",
    log:
        "results/logs/demo_data.log",
    benchmark:
        "results/benchmarks/demo_data.tsv"
    priority: CRITICAL_PRIORITY
    conda:
        CONDA_ENV
    params:
        settings=demo_settings(config["demo"]),
    script:
        "../scripts/demo_data.py"


rule demo_fashionpedia_data:
    """Embedded Fashionpedia look-alike in its real raw format (official JSONs, image zips)."""
    output:
        train_annotations=f"{DEMO_DIR}/fashionpedia/instances_attributes_train2020.json",
        val_annotations=f"{DEMO_DIR}/fashionpedia/instances_attributes_val2020.json",
        train_images=f"{DEMO_DIR}/fashionpedia/train2020.zip",
        val_images=f"{DEMO_DIR}/fashionpedia/val_test2020.zip",
        info=f"{DEMO_DIR}/fashionpedia/demo_info.json",
    log:
        "results/logs/demo_fashionpedia_data.log",
    benchmark:
        "results/benchmarks/demo_fashionpedia_data.tsv"
    priority: PIPELINE_PRIORITY
    conda:
        CONDA_ENV
    params:
        settings=fashionpedia_settings(config["demo"]),
    script:
        "../scripts/demo_fashionpedia.py"


rule demo_control_data:
    """A known-answer control: the FashionStyle14 look-alike with some generator knobs overridden."""
    output:
        fs14_csv=expand(
            "{demo}/controls/{{control}}/FashionStyle14_v1/{split}.csv", demo=DEMO_DIR, split=["train", "val", "test"]
        ),
        info=f"{DEMO_DIR}/controls/{{control}}/demo_info.json",
    log:
        "results/logs/demo_control_data/{control}.log",
    benchmark:
        "results/benchmarks/demo_control_data/{control}.tsv"
    priority: PIPELINE_PRIORITY
    conda:
        CONDA_ENV
    params:
        settings=lambda wildcards: control_generator_settings(config, wildcards.control),
    script:
        "../scripts/demo_data.py"


rule prepare_control:
    """Same reader as the real FashionStyle14 (prepare_fashionstyle14), on a control set."""
    input:
        unpack(lambda wildcards: SOURCES[CONTROL_PREFIX + wildcards.control].inputs),
    output:
        manifest=paths.store(f"{CONTROL_PREFIX}{{control}}", "manifest.tsv"),
        quarantine=paths.store(f"{CONTROL_PREFIX}{{control}}", "quarantine.tsv"),
        classes=paths.store(f"{CONTROL_PREFIX}{{control}}", "classes.json"),
        images=paths.store(f"{CONTROL_PREFIX}{{control}}", "images.npy"),
    log:
        f"results/logs/prepare_{CONTROL_PREFIX}{{control}}.log",
    benchmark:
        f"results/benchmarks/prepare_{CONTROL_PREFIX}{{control}}.tsv"
    priority: PIPELINE_PRIORITY
    conda:
        CONDA_ENV
    threads: PREPARE_THREADS
    params:
        # control-<name> entries carry fashionstyle14's store settings (fashion_rembg.controls)
        store_size=lambda wildcards: DATASET_CONFIG[CONTROL_PREFIX + wildcards.control]["store_size"],
        fit=lambda wildcards: DATASET_CONFIG[CONTROL_PREFIX + wildcards.control]["fit"],
    script:
        "../scripts/prepare_fashionstyle14.py"


for _plan in SOURCES.values():
    for _raw in _plan.fetch:

        rule:
            name:
                f"fetch_{_raw.dataset}_{_raw.key}"
            output:
                protected(_raw.path),
            log:
                f"results/logs/fetch/{_raw.dataset}_{_raw.key}.log",
            priority: PIPELINE_PRIORITY
            retries: 2 if _raw.url else 0
            localrule: True
            params:
                dataset=_raw.dataset,
                key=_raw.key,
            run:
                job_log(log[0], fetch_raw, config, params.dataset, params.key, output[0])

    for _extraction in _plan.extract:

        rule:
            name:
                f"extract_{_extraction.name}"
            input:
                _extraction.archive.path,
            output:
                _extraction.marker,
            log:
                f"results/logs/extract/{_extraction.name}.log",
            benchmark:
                f"results/benchmarks/extract/{_extraction.name}.tsv"
            priority: PIPELINE_PRIORITY
            params:
                name=_extraction.name,
            run:
                job_log(log[0], extract_raw, config, params.name, input[0], output[0])


if "modanet" in SOURCES and SOURCES["modanet"].modanet_images:

    rule extract_modanet_images:
        """The annotated images out of PaperDoll's photos.lmdb as %07d.jpg, bytes unchanged (the
        ~40 GB LMDB and its tar may be deleted afterwards); missing ids are listed in the marker."""
        input:
            annotations=SOURCES["modanet"].modanet_images["annotations"],
            lmdb=SOURCES["modanet"].modanet_images["lmdb"],
        output:
            SOURCES["modanet"].modanet_images["marker"],
        log:
            "results/logs/extract/modanet_images.log",
        benchmark:
            "results/benchmarks/extract/modanet_images.tsv"
        priority: PIPELINE_PRIORITY
        run:
            job_log(log[0], extract_modanet_images, config, input.annotations, input.lmdb, output[0])


if "fashionstyle14" in SOURCES:

    rule prepare_fashionstyle14:
        input:
            **SOURCES["fashionstyle14"].inputs,
        output:
            manifest=paths.store("fashionstyle14", "manifest.tsv"),
            quarantine=paths.store("fashionstyle14", "quarantine.tsv"),
            classes=paths.store("fashionstyle14", "classes.json"),
            images=paths.store("fashionstyle14", "images.npy"),
        log:
            "results/logs/prepare_fashionstyle14.log",
        benchmark:
            "results/benchmarks/prepare_fashionstyle14.tsv"
        priority: PIPELINE_PRIORITY
        conda:
            CONDA_ENV
        threads: PREPARE_THREADS
        params:
            store_size=DATASET_CONFIG["fashionstyle14"]["store_size"],
            fit=DATASET_CONFIG["fashionstyle14"]["fit"],
        script:
            "../scripts/prepare_fashionstyle14.py"


if "modanet" in SOURCES:

    rule prepare_modanet:
        input:
            **SOURCES["modanet"].inputs,
        output:
            **instance_outputs("modanet"),
            manifest=paths.store("modanet", "manifest.tsv"),
            quarantine=paths.store("modanet", "quarantine.tsv"),
            classes=paths.store("modanet", "classes.json"),
            images=paths.store("modanet", "images.npy"),
            classmaps=paths.store("modanet", "classmaps.npy"),
        log:
            "results/logs/prepare_modanet.log",
        benchmark:
            "results/benchmarks/prepare_modanet.tsv"
        priority: PIPELINE_PRIORITY
        conda:
            CONDA_ENV
        threads: PREPARE_THREADS
        params:
            store_size=DATASET_CONFIG["modanet"]["store_size"],
            fit=DATASET_CONFIG["modanet"]["fit"],
            split=DATASET_CONFIG["modanet"]["split"],
            instances="modanet" in INSTANCE_DATASETS,
        script:
            "../scripts/prepare_modanet.py"


if "fashionpedia" in SOURCES:

    rule prepare_fashionpedia:
        input:
            **SOURCES["fashionpedia"].inputs,
        output:
            **instance_outputs("fashionpedia"),
            manifest=paths.store("fashionpedia", "manifest.tsv"),
            quarantine=paths.store("fashionpedia", "quarantine.tsv"),
            classes=paths.store("fashionpedia", "classes.json"),
            images=paths.store("fashionpedia", "images.npy"),
            classmaps=paths.store("fashionpedia", "classmaps.npy"),
        log:
            "results/logs/prepare_fashionpedia.log",
        benchmark:
            "results/benchmarks/prepare_fashionpedia.tsv"
        priority: PIPELINE_PRIORITY
        conda:
            CONDA_ENV
        threads: PREPARE_THREADS
        params:
            store_size=DATASET_CONFIG["fashionpedia"]["store_size"],
            fit=DATASET_CONFIG["fashionpedia"]["fit"],
            classes=DATASET_CONFIG["fashionpedia"]["classes"],
            split=DATASET_CONFIG["fashionpedia"]["split"],
            instances="fashionpedia" in INSTANCE_DATASETS,
        script:
            "../scripts/prepare_fashionpedia.py"


rule prepare_imagefolder:
    """Own classification photos, one sub-folder per class (fashion_rembg.datasets.imagefolder)."""
    input:
        unpack(lambda wildcards: SOURCES[wildcards.dataset].inputs),
    output:
        manifest=paths.store("{dataset}", "manifest.tsv"),
        quarantine=paths.store("{dataset}", "quarantine.tsv"),
        classes=paths.store("{dataset}", "classes.json"),
        images=paths.store("{dataset}", "images.npy"),
    log:
        "results/logs/prepare_{dataset}.log",
    benchmark:
        "results/benchmarks/prepare_{dataset}.tsv"
    wildcard_constraints:
        dataset=own_of_kind("imagefolder"),
    priority: PIPELINE_PRIORITY
    conda:
        CONDA_ENV
    threads: PREPARE_THREADS
    params:
        settings=lambda wildcards: DATASET_CONFIG[wildcards.dataset],
    script:
        "../scripts/prepare_imagefolder.py"


rule prepare_coco:
    """Own COCO instance annotations as semantic class maps (fashion_rembg.datasets.cocoseg)."""
    input:
        unpack(lambda wildcards: SOURCES[wildcards.dataset].inputs),
    output:
        manifest=paths.store("{dataset}", "manifest.tsv"),
        quarantine=paths.store("{dataset}", "quarantine.tsv"),
        classes=paths.store("{dataset}", "classes.json"),
        images=paths.store("{dataset}", "images.npy"),
        classmaps=paths.store("{dataset}", "classmaps.npy"),
    log:
        "results/logs/prepare_{dataset}.log",
    benchmark:
        "results/benchmarks/prepare_{dataset}.tsv"
    wildcard_constraints:
        dataset=own_of_kind("coco", instances=False),
    priority: PIPELINE_PRIORITY
    conda:
        CONDA_ENV
    threads: PREPARE_THREADS
    params:
        settings=lambda wildcards: DATASET_CONFIG[wildcards.dataset],
        instances=False,
    script:
        "../scripts/prepare_coco.py"


use rule prepare_coco as prepare_coco_instances with:
    output:
        **instance_store("{dataset}"),
        manifest=paths.store("{dataset}", "manifest.tsv"),
        quarantine=paths.store("{dataset}", "quarantine.tsv"),
        classes=paths.store("{dataset}", "classes.json"),
        images=paths.store("{dataset}", "images.npy"),
        classmaps=paths.store("{dataset}", "classmaps.npy"),
    wildcard_constraints:
        dataset=own_of_kind("coco", instances=True),
    params:
        settings=lambda wildcards: DATASET_CONFIG[wildcards.dataset],
        instances=True,


rule prepare_truth:
    """True foreground masks aligned with a store (demo), to measure rembg mask quality."""
    input:
        demo_marker_if_truth,
        manifest=paths.store("{dataset}", "manifest.tsv"),
    output:
        paths.store("{dataset}", "truth.npy"),
    log:
        "results/logs/prepare_truth/{dataset}.log",
    priority: PIPELINE_PRIORITY
    conda:
        CONDA_ENV
    params:
        truth_dir=truth_dir,
        store_size=store_size,
        fit=lambda wildcards: DATASET_CONFIG[wildcards.dataset]["fit"],
    script:
        "../scripts/prepare_truth.py"
