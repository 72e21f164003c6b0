"""CPU time of a training loop with glibc malloc's default thresholds vs job_resources.MALLOC_ENV.

Why: with the default (dynamic) thresholds, freed tensor buffers go back to the kernel and fault in
again on every step (high system time); the Snakefile sets MALLOC_ENV for every job. Each run is a
fresh process (glibc reads the variables at start), alternating so that drift hits both. Run:

    .venv/bin/python benchmarks/malloc_env.py                  # shallow_cnn, resnet18, unet; 1 thread
    .venv/bin/python benchmarks/malloc_env.py --steps 60 --repeats 3 shallow_cnn

Prints user / sys CPU-s per setting and the ratio default / MALLOC_ENV of user+sys CPU
(> 1: the fixed thresholds are cheaper).
"""

import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

from cpu_memory_format import chosen_models, model_parser  # the same models at the demo's sizes

from fashion_rembg.job_resources import MALLOC_ENV

HERE = Path(__file__).resolve().parent


def one_run(model: str, steps: int, malloc_env: bool) -> tuple[float, float]:
    """(user, sys) CPU-s of one fresh process training `model` for `steps` steps."""
    env = {k: v for k, v in os.environ.items() if k not in MALLOC_ENV}
    env.update(OMP_NUM_THREADS="1", **(MALLOC_ENV if malloc_env else {}))
    code = (f"import sys; sys.path.insert(0, {str(HERE)!r}); import torch; torch.set_num_threads(1); "
            f"from cpu_memory_format import step_times; step_times({model!r}, False, {steps})")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime


def main() -> None:
    parser = model_parser(__doc__, steps=40)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    print("model        setting      user_s  sys_s  cpu_s  (medians)   ratio default/MALLOC_ENV")
    for model in chosen_models(parser, args):
        runs = {False: [], True: []}
        for _ in range(args.repeats):
            for setting in (False, True):
                runs[setting].append(one_run(model, args.steps, setting))
        cpu = {s: statistics.median(u + k for u, k in r) for s, r in runs.items()}
        for setting, name in ((False, "default"), (True, "MALLOC_ENV")):
            user = statistics.median(u for u, _ in runs[setting])
            sys_s = statistics.median(k for _, k in runs[setting])
            ratio = f"{cpu[False] / cpu[True]:.2f}x" if setting else ""
            print(f"{model:12s} {name:11s} {user:7.1f} {sys_s:6.1f} {cpu[setting]:6.1f}   {ratio}")


if __name__ == "__main__":
    main()
