from fashion_rembg.stages import plot_examples_from_files
from fashion_rembg.workflow_io import log_to

with log_to(snakemake.log[0]):
    plot_examples_from_files(snakemake.input.images, snakemake.input.masks, snakemake.input.composites,
                             snakemake.input.truth, snakemake.output[0], rows=snakemake.params.rows)
