from pathlib import Path

from fashion_rembg.datasets.modanet import prepare_modanet
from fashion_rembg.workflow_io import log_to

with log_to(snakemake.log[0]):
    split = snakemake.params.split
    prepare_modanet(snakemake.input.annotations, Path(snakemake.input.lmdb).parent,
                    Path(snakemake.output.manifest).parent, tuple(snakemake.params.store_size),
                    split["val_fraction"], split["test_fraction"], split["seed"])
