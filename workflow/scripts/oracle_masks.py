from fashion_rembg.evaluation.oracle import write_oracle_masks
from fashion_rembg.workflow_io import log_to

with log_to(snakemake.log[0]):
    write_oracle_masks(snakemake.input[0], snakemake.output[0])
