from pathlib import Path

from fashion_rembg.datasets.fashionpedia import prepare_fashionpedia
from fashion_rembg.datasets.sources import check_file
from fashion_rembg.workflow_io import log_to

with log_to(snakemake.log[0]):
    keys = ("train_annotations", "val_annotations", "train_images", "val_images")
    paths = {key: snakemake.input[key] for key in keys}
    for key, path in paths.items():
        check_file(snakemake.config, "fashionpedia", key, path)  # pins / first-use hash
    split = snakemake.params.split
    prepare_fashionpedia(paths, Path(snakemake.output.manifest).parent, tuple(snakemake.params.store_size),
                         snakemake.params.classes, split["val_fraction"], split["seed"], workers=snakemake.threads,
                         fit=snakemake.params.fit, instances=snakemake.params.instances)
