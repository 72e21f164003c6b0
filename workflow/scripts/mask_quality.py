from fashion_rembg.saliency.stage import write_quality
from fashion_rembg.workflow_io import log_to

with log_to(snakemake.log[0]):
    write_quality(snakemake.input.masks, snakemake.output[0], dataset=snakemake.wildcards.dataset,
                  sod=snakemake.wildcards.sod, truth_npy=snakemake.input.get("truth"),
                  classmaps_npy=snakemake.input.get("classmaps"))
