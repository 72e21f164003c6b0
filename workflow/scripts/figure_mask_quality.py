from fashion_rembg.saliency.stage import plot_mask_quality
from fashion_rembg.workflow_io import log_to

with log_to(snakemake.log[0]):
    plot_mask_quality(snakemake.input.images, snakemake.input.masks, snakemake.input.quality,
                      snakemake.output[0], truth_npy=snakemake.input.get("truth"),
                      classmaps_npy=snakemake.input.get("classmaps"), rows=snakemake.params.rows)
