from fashion_rembg.saliency.stage import run_mask_stage
from fashion_rembg.workflow_io import log_to

with log_to(snakemake.log[0]):
    run_mask_stage(snakemake.input.images, snakemake.output.masks, snakemake.output.session,
                   model=snakemake.wildcards.sod, model_home=snakemake.params.model_home,
                   custom=snakemake.params.custom, post_process=snakemake.params.post_process,
                   threads=snakemake.threads)
