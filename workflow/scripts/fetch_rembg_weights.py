from fashion_rembg.saliency.fetch import fetch_weights
from fashion_rembg.workflow_io import log_to

with log_to(snakemake.log[0]):
    print(fetch_weights(snakemake.wildcards.rembg_model, snakemake.output[0],
                        source=snakemake.input[0] if snakemake.input else None, **snakemake.params.fetch))
