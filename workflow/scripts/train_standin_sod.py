from fashion_rembg.saliency.standin import train_standin_sod
from fashion_rembg.workflow_io import log_to

with log_to(snakemake.log[0]):
    stats = train_standin_sod(snakemake.params.sod_dir, snakemake.output[0], seed=snakemake.params.seed,
                              epochs=snakemake.params.epochs, threads=snakemake.threads)
    print(stats)
