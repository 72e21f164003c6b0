from fashion_rembg.reporting.plots import figure_dose_response
from fashion_rembg.workflow_io import log_to

with log_to(snakemake.log[0]):
    figure_dose_response(snakemake.input[0], snakemake.output[0])
