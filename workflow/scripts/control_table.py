from fashion_rembg.stages import controls_to_table
from fashion_rembg.workflow_io import log_to

with log_to(snakemake.log[0]):
    controls_to_table(snakemake.params.controls, snakemake.input, snakemake.output.csv,
                      snakemake.output.md, margin=snakemake.params.margin)
