# Saliency masks with rembg (the study's independent variable) and rembg composites.
# {sod} names a mask set (rembg model + mask options; fashion_rembg.saliency.registry).
from fashion_rembg.paths import photo_mask_inputs, photo_mask_settings


checkpoint saliency_plan:
    """Shards of the image store (its size is known only once it is prepared)."""
    input:
        paths.store("{dataset}", "images.npy"),
    output:
        paths.shard_plan("{dataset}"),
    log:
        "results/logs/saliency_plan/{dataset}.log",
    priority: PIPELINE_PRIORITY
    conda:
        CONDA_ENV
    params:
        shard_size=SALIENCY["shard_size"],
    script:
        "../scripts/saliency_plan.py"


rule saliency_shard:
    """Masks of one shard through one rembg session (batched, CUDA or CPU with `threads`); with
    saliency.mask_input photo, rembg runs on the raw photos and the masks are fitted like the images."""
    input:
        unpack(lambda wildcards: photo_mask_inputs(config, SOURCES, wildcards.dataset)),
        images=paths.store("{dataset}", "images.npy"),
        model=mask_model,
    output:
        masks=temp(paths.mask_shard("{dataset}", "{sod}", "{start}", "{stop}", ".npy")),
        info=temp(paths.mask_shard("{dataset}", "{sod}", "{start}", "{stop}", ".json")),
    log:
        "results/logs/saliency_shard/{dataset}/{sod}/{start}-{stop}.log",
    benchmark:
        "results/benchmarks/saliency_shard/{dataset}/{sod}/{start}-{stop}.tsv"
    wildcard_constraints:
        sod=REMBG_SOD_PATTERN,
        start=r"\d+",
        stop=r"\d+",
    priority: PIPELINE_PRIORITY
    conda:
        CONDA_ENV
    threads: SALIENCY["threads"]
    resources:
        gpu=SALIENCY["gpu"],
        mem_mb=SALIENCY["mem_mb"],
        runtime=lambda wildcards, attempt: SALIENCY["runtime"] * attempt,
    params:
        spec=mask_spec,
        model_home=MODEL_HOME,
        run=MASK_RUN,
        photos=lambda wildcards: photo_mask_settings(config, SOURCES, wildcards.dataset),
    script:
        "../scripts/saliency_shard.py"


rule saliency_masks:
    """Gather the shards into the mask set's masks.npy (uint8 soft alpha) and session.json."""
    input:
        shards=mask_shards(".npy"),
        infos=mask_shards(".json"),
        images=paths.store("{dataset}", "images.npy"),
        model=mask_model,
    output:
        masks=paths.mask_set("{dataset}", "{sod}", "masks.npy"),
        session=paths.mask_set("{dataset}", "{sod}", "session.json"),
    log:
        "results/logs/saliency_masks/{dataset}/{sod}.log",
    wildcard_constraints:
        sod=REMBG_SOD_PATTERN,
    priority: PIPELINE_PRIORITY
    conda:
        CONDA_ENV
    params:
        spec=mask_spec,
    script:
        "../scripts/saliency_masks.py"


rule mask_quality:
    """IoU / MAE / F-measure against true masks and/or garment recall against the class maps."""
    input:
        unpack(quality_references),
        masks=paths.mask_set("{dataset}", "{sod}", "masks.npy"),
    output:
        paths.mask_set("{dataset}", "{sod}", "quality.json"),
    log:
        "results/logs/mask_quality/{dataset}/{sod}.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/mask_quality.py"


rule figure_mask_quality:
    """Worst and best masks of a mask set (by IoU, or by garment recall without true masks)."""
    input:
        unpack(quality_references),
        images=paths.store("{dataset}", "images.npy"),
        masks=paths.mask_set("{dataset}", "{sod}", "masks.npy"),
        quality=paths.mask_set("{dataset}", "{sod}", "quality.json"),
    output:
        report(
            paths.mask_quality_figure("{dataset}", "{sod}"),
            caption="../report/mask_quality.rst",
            category="Mask quality",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "mask set": "{sod}"},
        ),
    log:
        "results/logs/figure_mask_quality/{dataset}/{sod}.log",
    conda:
        CONDA_ENV
    params:
        rows=SALIENCY["quality_examples"],
    script:
        "../scripts/figure_mask_quality.py"


rule composite:
    """rembg images: image × mask over a fill. A new fill reuses the masks."""
    input:
        images=paths.store("{dataset}", "images.npy"),
        masks=paths.mask_set("{dataset}", "{sod}", "masks.npy"),
    output:
        paths.composite("{dataset}", "{sod}", "{fill}"),
    log:
        "results/logs/composite/{dataset}/{sod}/{fill}.log",
    priority: PIPELINE_PRIORITY
    conda:
        CONDA_ENV
    script:
        "../scripts/composite.py"


rule oracle_masks:
    """The oracle variant's masks: the true foreground masks in the mask-set layout, so the
    composite rule with sod = oracle builds oracle images exactly like rembg images."""
    input:
        paths.store("{dataset}", "truth.npy"),
    output:
        paths.mask_set("{dataset}", ORACLE_SOD),
    log:
        "results/logs/oracle_masks/{dataset}.log",
    priority: PIPELINE_PRIORITY
    conda:
        CONDA_ENV
    script:
        "../scripts/oracle_masks.py"
