from fashion_rembg.models.weights import provide_weights
from fashion_rembg.workflow_io import log_to

with log_to(snakemake.log[0]):
    provide_weights(snakemake.output[0], standin=snakemake.rule == "standin_pretrained_weights")
