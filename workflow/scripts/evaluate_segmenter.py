from fashion_rembg.gpu_slots import gpu_slots
from fashion_rembg.training.segmentation import evaluate_segmenter
from fashion_rembg.workflow_io import log_to

with log_to(snakemake.log[0]), gpu_slots(snakemake.config["compute"]["jobs_per_gpu"]):
    evaluate_segmenter(model=snakemake.input.model, classmaps=snakemake.input.classmaps,
                       manifest=snakemake.input.manifest, classes=snakemake.input.classes,
                       conditions=snakemake.params.conditions, metrics_out=snakemake.output.metrics,
                       predictions_out=snakemake.output.predictions, experiment=snakemake.params.experiment,
                       seed=int(snakemake.wildcards.seed), threads=snakemake.threads)
