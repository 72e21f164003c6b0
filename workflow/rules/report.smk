# Aggregation: tables, statistics, figures, all registered for `snakemake --report`.


rule aggregate:
    input:
        metrics=all_runs("metrics.json"),
        # Per-image scores (CIs, p-values) and training histories (run health), read beside each metrics.json.
        predictions=all_runs("predictions.npz"),
        histories=all_runs("history.csv"),
        # Instance runs: COCOeval's per-image matches for the CI of Δ segm AP, read from these files.
        coco=task_runs("instance", "coco"),
        quality=quality_files(),
    output:
        csv=report(
            paths.table("summary.csv"),
            caption="../report/summary.rst",
            category="Tables",
            labels={"table": "summary (CSV)"},
        ),
        md=report(
            paths.table("summary.md"),
            caption="../report/summary.rst",
            category="Tables",
            labels={"table": "summary (Markdown)"},
        ),
        tex=report(
            paths.table("summary.tex"),
            caption="../report/summary.rst",
            category="Tables",
            labels={"table": "summary (LaTeX)"},
        ),
        cross=report(
            paths.table("cross_condition.csv"),
            caption="../report/cross_condition.rst",
            category="Tables",
            labels={"table": "train on X, test on Y (CSV)"},
        ),
    log:
        "results/logs/aggregate.log",
    conda:
        CONDA_ENV
    params:
        quality_keys=quality_keys(),
    script:
        "../scripts/aggregate.py"


rule figure_variant_bars:
    input:
        paths.table("summary.csv"),
    output:
        report(
            paths.figure("variant_bars.png"),
            caption="../report/variant_bars.rst",
            category="Figures",
            labels={"figure": "original vs rembg"},
        ),
    log:
        "results/logs/figure_variant_bars.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/figure_variant_bars.py"


rule figure_learning_curves:
    input:
        histories=all_runs("history.csv"),
        # The curves are grouped by the experiment recorded next to each history file.
        metrics=all_runs("metrics.json"),
    output:
        report(
            paths.figure("learning_curves.png"),
            caption="../report/learning_curves.rst",
            category="Figures",
            labels={"figure": "learning curves"},
        ),
    log:
        "results/logs/figure_learning_curves.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/figure_learning_curves.py"


rule figure_cross_condition:
    input:
        paths.table("cross_condition.csv"),
    output:
        report(
            paths.figure("cross_condition.png"),
            caption="../report/cross_condition.rst",
            category="Figures",
            labels={"figure": "train on X, test on Y"},
        ),
    log:
        "results/logs/figure_cross_condition.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/figure_cross_condition.py"


rule figure_examples:
    input:
        images=paths.store(example_dataset(), "images.npy"),
        masks=paths.mask_set(example_dataset(), SALIENCY["model"]),
        composites=paths.composite(example_dataset(), SALIENCY["model"], SALIENCY["fill"]),
        truth=(
            [paths.store(example_dataset(), "truth.npy")]
            if DATASET_CONFIG.get(example_dataset(), {}).get("truth")
            else []
        ),
    output:
        report(
            paths.figure("examples.png"),
            caption="../report/examples.rst",
            category="Figures",
            labels={"figure": "examples"},
        ),
    log:
        "results/logs/figure_examples.log",
    conda:
        CONDA_ENV
    params:
        rows=config["report"]["examples"],
    script:
        "../scripts/figure_examples.py"


rule figure_per_class_ap:
    """Instance segmentation: per-class Δ segm AP (which garments gain, which lose)."""
    input:
        metrics=task_runs("instance", "metrics.json"),
    output:
        report(
            paths.figure("instance_per_class_ap.png"),
            caption="../report/per_class_ap.rst",
            category="Figures",
            labels={"figure": "per-class segm AP deltas"},
        ),
    log:
        "results/logs/figure_per_class_ap.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/figure_per_class_ap.py"


if instance_example_pair():

    rule figure_instance_examples:
        """Predicted instance masks of the original- and the rembg-trained model on test images."""
        input:
            **instance_example_inputs(),
        output:
            report(
                paths.figure("instance_examples.png"),
                caption="../report/instance_examples.rst",
                category="Figures",
                labels={"figure": "instance segmentation examples"},
            ),
        log:
            "results/logs/figure_instance_examples.log",
        conda:
            CONDA_ENV
        params:
            rows=config["report"]["examples"],
            original_key=condition_key("original"),
            rembg_key=condition_key(
                instance_example_pair()[1]["variant"],
                instance_example_pair()[1]["sod"],
                instance_example_pair()[1]["fill"],
            ),
        script:
            "../scripts/figure_instance_examples.py"


rule control_table:
    """Known-answer controls: each control's Δ with CI and p, and its verdict against the knobs."""
    input:
        **control_predictions(),
    output:
        csv=report(
            paths.table("controls.csv"),
            caption="../report/controls.rst",
            category="Controls",
            labels={"table": "controls (CSV)"},
        ),
        md=report(
            paths.table("controls.md"),
            caption="../report/controls.rst",
            category="Controls",
            labels={"table": "controls (Markdown)"},
        ),
    log:
        "results/logs/control_table.log",
    conda:
        CONDA_ENV
    params:
        controls=CONTROL_RUNS,
        margin=config["controls"].get("margin", 0.05),
    script:
        "../scripts/control_table.py"


rule figure_dose_response:
    input:
        paths.table("controls.csv"),
    output:
        report(
            paths.figure("dose_response.png"),
            caption="../report/dose_response.rst",
            category="Controls",
            labels={"figure": "dose-response: Δ against clutter"},
        ),
    log:
        "results/logs/figure_dose_response.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/figure_dose_response.py"


rule controls:
    """`snakemake controls`: build and check the known-answer controls only."""
    input:
        CONTROL_OUTPUTS,
    localrule: True


rule quarantine_table:
    """Kept/quarantined counts of every prepared dataset in use, for the report."""
    input:
        quarantine=[paths.store(d, "quarantine.tsv") for d in ENABLED_DATASETS],
        manifest=[paths.store(d, "manifest.tsv") for d in ENABLED_DATASETS],
        # Instance stores: their dropped-annotation counts join the table.
        instances=[instance_store(d)["instances_meta"] for d in INSTANCE_DATASETS],
    output:
        csv=report(
            paths.table("quarantine.csv"),
            caption="../report/quarantine.rst",
            category="Tables",
            labels={"table": "quarantined raw data (CSV)"},
        ),
        md=report(
            paths.table("quarantine.md"),
            caption="../report/quarantine.rst",
            category="Tables",
            labels={"table": "quarantined raw data (Markdown)"},
        ),
    log:
        "results/logs/quarantine_table.log",
    conda:
        CONDA_ENV
    params:
        datasets=ENABLED_DATASETS,
    script:
        "../scripts/quarantine_table.py"
