from fashion_rembg.saliency.stage import plan_shards
from fashion_rembg.workflow_io import log_to

with log_to(snakemake.log[0]):
    print(plan_shards(snakemake.input[0], snakemake.output[0], shard_size=snakemake.params.shard_size))
