from pathlib import Path

from fashion_rembg.datasets.fashionstyle14 import prepare_fashionstyle14
from fashion_rembg.workflow_io import log_to

with log_to(snakemake.log[0]):
    out_dir = Path(snakemake.output.manifest).parent
    prepare_fashionstyle14(snakemake.params.root, out_dir, tuple(snakemake.params.store_size))
