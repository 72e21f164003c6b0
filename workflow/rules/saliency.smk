# Saliency masks with rembg (the study's independent variable) and rembg composites.


rule train_standin_sod:
    """Demo only: rembg weights cannot be downloaded, so train a small saliency network on the
    demo's saliency set and export it (u2net contract) into the rembg model home."""
    input:
        f"{DEMO_DIR}/demo_info.json",
    output:
        f"{MODEL_HOME}/{{standin}}.onnx",
    wildcard_constraints:
        standin="|".join(STANDIN_MODELS) or "NO_STANDIN",
    params:
        sod_dir=f"{DEMO_DIR}/sod_train",
        epochs=SALIENCY["standin"]["epochs"],
        seed=SALIENCY["standin"]["seed"],
    threads: 2
    conda:
        CONDA_ENV
    log:
        "results/logs/train_standin_sod/{standin}.log",
    benchmark:
        "results/benchmarks/train_standin_sod/{standin}.tsv"
    script:
        "../scripts/train_standin_sod.py"


rule saliency_masks:
    """Soft masks (rembg only_mask) through an explicit rembg session, one per job."""
    input:
        images="results/data/{dataset}/images.npy",
        model=mask_model,
    output:
        masks="results/saliency/{dataset}/{sod}/masks.npy",
        session="results/saliency/{dataset}/{sod}/session.json",
    params:
        model_home=MODEL_HOME,
        custom=custom_model_spec,
        post_process=SALIENCY["post_process"],
    threads: 2
    conda:
        CONDA_ENV
    log:
        "results/logs/saliency_masks/{dataset}/{sod}.log",
    benchmark:
        "results/benchmarks/saliency_masks/{dataset}/{sod}.tsv"
    script:
        "../scripts/saliency_masks.py"


rule mask_quality:
    """IoU / MAE / F-measure of rembg masks against the true foreground masks."""
    input:
        masks="results/saliency/{dataset}/{sod}/masks.npy",
        truth="results/data/{dataset}/truth.npy",
    output:
        "results/saliency/{dataset}/{sod}/quality.json",
    conda:
        CONDA_ENV
    log:
        "results/logs/mask_quality/{dataset}/{sod}.log",
    script:
        "../scripts/mask_quality.py"


rule composite:
    """rembg images: image × mask over a fill. A new fill reuses the masks."""
    input:
        images="results/data/{dataset}/images.npy",
        masks="results/saliency/{dataset}/{sod}/masks.npy",
    output:
        "results/rembg/{dataset}/{sod}/{fill}/images.npy",
    conda:
        CONDA_ENV
    log:
        "results/logs/composite/{dataset}/{sod}/{fill}.log",
    script:
        "../scripts/composite.py"
