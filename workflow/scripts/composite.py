from fashion_rembg.saliency.composite import write_composites
from fashion_rembg.workflow_io import log_to

with log_to(snakemake.log[0]):
    write_composites(snakemake.input.images, snakemake.input.masks, snakemake.output[0],
                     snakemake.wildcards.fill)
