from fashion_rembg.reporting.aggregate import per_class_ap_deltas
from fashion_rembg.reporting.plots import plot_per_class_ap
from fashion_rembg.workflow_io import log_to

with log_to(snakemake.log[0]):
    plot_per_class_ap(per_class_ap_deltas(snakemake.input.metrics), snakemake.output[0])
