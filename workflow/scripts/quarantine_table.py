from pathlib import Path

from fashion_rembg.reporting.quarantine import write_quarantine_tables
from fashion_rembg.workflow_io import log_to

with log_to(snakemake.log[0]):
    stores = {d: Path(p).parent for d, p in zip(snakemake.params.datasets, snakemake.input.quarantine, strict=True)}
    write_quarantine_tables(stores, snakemake.output.csv, snakemake.output.md)
