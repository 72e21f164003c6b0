"""Write the SLURM check's config: the end-to-end tests' tiny demo, classification only, one seed.

`--time-limit`: training jobs declare a 1-minute SLURM time limit (2 on the retry) and train long
enough to be killed at it, so the retry must resume from the checkpoint.
"""
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from workflow_helpers import tiny_config  # noqa: E402

config = tiny_config()
config["segmentation"]["enabled"] = False
config["classification"]["seeds"] = [0]
config["classification"]["grid"]["epochs"] = 10  # long enough to requeue the job mid-training
# Mask quality is not what this checks: the smallest stand-in SOD training (its job is on the SLURM
# run's critical path), and the fewest ModaNet look-alikes the schema allows (segmentation is off).
config["saliency"]["standin"]["epochs"] = 1
config["demo"].update(sod_train=10, modanet_train=10, modanet_val=1)
config["compute"].update(mem_mb=1000, threads_per_job=1, prepare_threads=1)  # a 2-CPU node
if "--time-limit" in sys.argv[2:]:
    config["classification"]["grid"]["epochs"] = 600
    config["compute"]["runtime"] = 1
Path(sys.argv[1]).write_text(yaml.safe_dump(config, sort_keys=False))
