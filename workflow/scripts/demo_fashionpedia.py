from pathlib import Path

from fashion_rembg.demo import generate_fashionpedia
from fashion_rembg.workflow_io import log_to

with log_to(snakemake.log[0]):
    generate_fashionpedia(Path(snakemake.output.info).parent, **snakemake.params.settings)
