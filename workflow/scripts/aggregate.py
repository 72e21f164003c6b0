from fashion_rembg.stages import aggregate_to_tables
from fashion_rembg.workflow_io import log_to

with log_to(snakemake.log[0]):
    aggregate_to_tables(snakemake.input.metrics, snakemake.input.quality, snakemake.output.csv,
                        snakemake.output.md, cross_csv=snakemake.output.cross, tex_path=snakemake.output.tex,
                        quality_keys=snakemake.params.quality_keys)
