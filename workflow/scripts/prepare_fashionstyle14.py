from pathlib import Path

from fashion_rembg.datasets.fashionstyle14 import prepare_fashionstyle14
from fashion_rembg.workflow_io import log_to

with log_to(snakemake.log[0]):
    root = Path(snakemake.input[0]).parent  # the folder of the split CSVs, or of an extracted archive
    out_dir = Path(snakemake.output.manifest).parent
    prepare_fashionstyle14(root, out_dir, tuple(snakemake.params.store_size), workers=snakemake.threads,
                           fit=snakemake.params.fit)
