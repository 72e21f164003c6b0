from pathlib import Path

from fashion_rembg.gpu_slots import gpu_slots
from fashion_rembg.training.instance import evaluate_instance
from fashion_rembg.workflow_io import log_to

with log_to(snakemake.log[0]), gpu_slots(snakemake.config["compute"]["jobs_per_gpu"]):
    evaluate_instance(model=snakemake.input.model, instances_dir=Path(snakemake.input.instances).parent,
                      manifest=snakemake.input.manifest, conditions=snakemake.params.conditions,
                      metrics_out=snakemake.output.metrics, predictions_out=snakemake.output.predictions,
                      coco_dir=snakemake.output.coco, experiment=snakemake.params.experiment,
                      seed=int(snakemake.wildcards.seed), threads=snakemake.threads)
