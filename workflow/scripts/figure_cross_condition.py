import pandas as pd

from fashion_rembg.reporting.plots import plot_cross_condition
from fashion_rembg.workflow_io import log_to

with log_to(snakemake.log[0]):
    plot_cross_condition(pd.read_csv(snakemake.input[0]), snakemake.output[0])
