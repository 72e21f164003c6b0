from pathlib import Path

from fashion_rembg.gpu_slots import gpu_slots
from fashion_rembg.training.instance import evaluate_instance, train_instance
from fashion_rembg.workflow_io import log_to

with log_to(snakemake.log[0]), gpu_slots(snakemake.config["compute"]["jobs_per_gpu"]):
    seed = int(snakemake.wildcards.seed)
    instances_dir = Path(snakemake.input.instances).parent
    train_instance(images=snakemake.input.images, instances_dir=instances_dir,
                   manifest=snakemake.input.manifest, model_out=snakemake.output.model,
                   history_out=snakemake.output.history, experiment=snakemake.params.experiment,
                   seed=seed, threads=snakemake.threads,
                   checkpoint_dir=snakemake.params.checkpoint, torch_home=snakemake.params.torch_home)
    evaluate_instance(model=snakemake.output.model, instances_dir=instances_dir,
                      manifest=snakemake.input.manifest, conditions=snakemake.params.conditions,
                      metrics_out=snakemake.output.metrics, predictions_out=snakemake.output.predictions,
                      coco_dir=snakemake.output.coco, experiment=snakemake.params.experiment,
                      seed=seed, threads=snakemake.threads)
