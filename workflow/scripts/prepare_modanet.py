from pathlib import Path

from fashion_rembg.datasets.modanet import prepare_modanet
from fashion_rembg.datasets.sources import check_file
from fashion_rembg.workflow_io import log_to

with log_to(snakemake.log[0]):
    check_file(snakemake.config, "modanet", "annotations", snakemake.input.annotations)  # pins / first-use hash
    split = snakemake.params.split
    images = Path(snakemake.input.images).parent  # %07d.jpg taken out of photos.lmdb by extract_modanet_images
    prepare_modanet(snakemake.input.annotations, images, Path(snakemake.output.manifest).parent,
                    tuple(snakemake.params.store_size), split["val_fraction"], split["test_fraction"], split["seed"],
                    workers=snakemake.threads, fit=snakemake.params.fit, instances=snakemake.params.instances)
