from fashion_rembg.gpu_slots import gpu_slots
from fashion_rembg.training.classification import evaluate_classifier, train_classifier
from fashion_rembg.workflow_io import log_to

with log_to(snakemake.log[0]), gpu_slots(snakemake.config["compute"]["jobs_per_gpu"]):
    seed = int(snakemake.wildcards.seed)
    train_classifier(images=snakemake.input.images, manifest=snakemake.input.manifest,
                     classes=snakemake.input.classes, model_out=snakemake.output.model,
                     history_out=snakemake.output.history, experiment=snakemake.params.experiment,
                     seed=seed, threads=snakemake.threads,
                     checkpoint_dir=snakemake.params.checkpoint, torch_home=snakemake.params.torch_home)
    evaluate_classifier(model=snakemake.output.model, manifest=snakemake.input.manifest,
                        classes=snakemake.input.classes, conditions=snakemake.params.conditions,
                        metrics_out=snakemake.output.metrics, predictions_out=snakemake.output.predictions,
                        experiment=snakemake.params.experiment, seed=seed, threads=snakemake.threads)
