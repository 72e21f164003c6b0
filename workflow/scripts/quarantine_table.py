from pathlib import Path

from fashion_rembg.reporting.quarantine import write_quarantine_tables
from fashion_rembg.workflow_io import log_to

with log_to(snakemake.log[0]):
    stores = {Path(p).parent.name: Path(p).parent for p in snakemake.input.quarantine}
    write_quarantine_tables(stores, snakemake.output.csv, snakemake.output.md)
