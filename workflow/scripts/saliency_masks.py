from fashion_rembg.saliency.stage import gather_masks
from fashion_rembg.workflow_io import log_to

with log_to(snakemake.log[0]):
    gather_masks(snakemake.input.shards, snakemake.input.infos, snakemake.input.images,
                 snakemake.output.masks, snakemake.output.session)
