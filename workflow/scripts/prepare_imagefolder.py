from pathlib import Path

from fashion_rembg.datasets.imagefolder import prepare_imagefolder
from fashion_rembg.workflow_io import log_to

with log_to(snakemake.log[0]):
    ds = snakemake.params.settings
    prepare_imagefolder(snakemake.wildcards.dataset, Path(ds["root"]), Path(snakemake.output.manifest).parent,
                        tuple(ds["store_size"]), ds["split"], ds["split_lists"], workers=snakemake.threads,
                        fit=ds["fit"])
