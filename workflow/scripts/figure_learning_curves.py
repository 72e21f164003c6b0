from fashion_rembg.stages import plot_learning_curves_from_runs
from fashion_rembg.workflow_io import log_to

with log_to(snakemake.log[0]):
    plot_learning_curves_from_runs(snakemake.input.histories, snakemake.output[0])
