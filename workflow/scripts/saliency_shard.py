from fashion_rembg.gpu_slots import gpu_slots
from fashion_rembg.saliency.stage import run_mask_shard
from fashion_rembg.workflow_io import log_to

with log_to(snakemake.log[0]), gpu_slots(snakemake.config["compute"]["jobs_per_gpu"]):
    run_mask_shard(snakemake.input.images, snakemake.output.masks, snakemake.output.info,
                   start=int(snakemake.wildcards.start), stop=int(snakemake.wildcards.stop),
                   spec=snakemake.params.spec, model_home=snakemake.params.model_home,
                   threads=snakemake.threads, photos=snakemake.params.photos, **snakemake.params.run)
