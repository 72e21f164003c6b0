# Every weights rule in one place: the rembg models of the mask sets (downloaded and checked, or a
# stand-in trained on the demo) and torchvision's ImageNet weights (downloaded, or demo stand-ins).
# The dataset downloads stay beside their extraction in data.smk. Only missing files get a job:
# a file placed by hand is a source, never re-fetched (fashion_rembg.preflight says what to place where).


rule fetch_rembg_weights:
    """The only network access: a rembg registry model into the project-local model home, written
    only once its checksum matches rembg's published md5/sha256 (birefnet-general-fp16: converted)."""
    input:
        fetch_source,
    output:
        f"{MODEL_HOME}/{{rembg_model}}.onnx",
    log:
        "results/logs/fetch_rembg_weights/{rembg_model}.log",
    wildcard_constraints:
        rembg_model=REMBG_MODEL_PATTERN,
    priority: PIPELINE_PRIORITY
    localrule: True
    conda:
        CONDA_ENV
    params:
        fetch=SALIENCY["fetch"],
    script:
        "../scripts/fetch_rembg_weights.py"


rule train_standin_sod:
    """Demo only: rembg weights cannot be downloaded, so train a small saliency network on the
    demo's saliency set and export it (u2net contract) into the rembg model home."""
    input:
        f"{DEMO_DIR}/demo_info.json",
    output:
        f"{MODEL_HOME}/{{standin}}.onnx",
    log:
        "results/logs/train_standin_sod/{standin}.log",
    benchmark:
        "results/benchmarks/train_standin_sod/{standin}.tsv"
    wildcard_constraints:
        standin="|".join(STANDIN_MODELS) or "NO_STANDIN",
    priority: CRITICAL_PRIORITY
    conda:
        CONDA_ENV
    threads: SALIENCY["standin"]["threads"]
    params:
        sod_dir=f"{DEMO_DIR}/sod_train",
        epochs=SALIENCY["standin"]["epochs"],
        seed=SALIENCY["standin"]["seed"],
        threads=SALIENCY["standin"]["threads"],  # the model's bytes depend on it: a change retrains
    script:
        "../scripts/train_standin_sod.py"


if STANDIN_WEIGHTS:

    rule standin_pretrained_weights:
        """Demo only (compute.pretrained_standin): seeded random weights in torchvision's file
        format, so the offline demo runs init: imagenet through the real loading code."""
        output:
            f"{TORCH_HOME}/hub/checkpoints/{{weights_file}}",
        log:
            "results/logs/pretrained_weights/{weights_file}.log",
        wildcard_constraints:
            weights_file=file_pattern(STANDIN_WEIGHTS),
        priority: PIPELINE_PRIORITY
        conda:
            CONDA_ENV
        script:
            "../scripts/pretrained_weights.py"


if FETCH_WEIGHTS:

    rule fetch_torchvision_weights:
        """Missing torchvision ImageNet weights into the project-local TORCH_HOME (checked against
        the sha256 prefix in the file name); offline, the error says which file to place where."""
        output:
            f"{TORCH_HOME}/hub/checkpoints/{{weights_file}}",
        log:
            "results/logs/pretrained_weights/{weights_file}.log",
        wildcard_constraints:
            weights_file=file_pattern(FETCH_WEIGHTS),
        priority: PIPELINE_PRIORITY
        retries: 2
        localrule: True
        conda:
            CONDA_ENV
        script:
            "../scripts/pretrained_weights.py"
