from fashion_rembg.datasets.truth import prepare_truth
from fashion_rembg.workflow_io import log_to

with log_to(snakemake.log[0]):
    prepare_truth(snakemake.input.manifest, snakemake.params.truth_dir, snakemake.output[0],
                  tuple(snakemake.params.store_size), snakemake.params.fit)
