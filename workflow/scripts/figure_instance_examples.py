from pathlib import Path

from fashion_rembg.reporting.examples import plot_instance_examples_from_files
from fashion_rembg.workflow_io import log_to

with log_to(snakemake.log[0]):
    plot_instance_examples_from_files(snakemake.input.images, snakemake.input.composites,
                                      Path(snakemake.input.original_coco) / snakemake.params.original_key,
                                      Path(snakemake.input.rembg_coco) / snakemake.params.rembg_key,
                                      snakemake.output[0], n=snakemake.params.rows)
