from pathlib import Path

from fashion_rembg.datasets.cocoseg import prepare_coco
from fashion_rembg.workflow_io import log_to

with log_to(snakemake.log[0]):
    ds = snakemake.params.settings
    prepare_coco(snakemake.wildcards.dataset, Path(ds["annotations"]), Path(ds["images"]),
                 Path(snakemake.output.manifest).parent, tuple(ds["store_size"]), ds["split"], ds["categories"],
                 workers=snakemake.threads, fit=ds["fit"], instances=snakemake.params.instances)
