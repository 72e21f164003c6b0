from pathlib import Path

from fashion_rembg.stages import regenerate_demo
from fashion_rembg.workflow_io import log_to

with log_to(snakemake.log[0]):
    regenerate_demo(Path(snakemake.output.info).parent, **snakemake.params.settings)
