from fashion_rembg.gpu_slots import gpu_slots
from fashion_rembg.training.classification import train_classifier
from fashion_rembg.workflow_io import log_to

with log_to(snakemake.log[0]), gpu_slots(snakemake.config["compute"]["jobs_per_gpu"]):
    train_classifier(images=snakemake.input.images, manifest=snakemake.input.manifest,
                     classes=snakemake.input.classes, model_out=snakemake.output.model,
                     history_out=snakemake.output.history, experiment=snakemake.params.experiment,
                     seed=int(snakemake.wildcards.seed), threads=snakemake.threads,
                     checkpoint_dir=snakemake.params.checkpoint, torch_home=snakemake.params.torch_home)
