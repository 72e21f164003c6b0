"""Training step time on the CPU, NCHW (contiguous) vs channels-last, for the demo's models.

Why: on the CPU the shallow CNN's max-pools are several times faster channels-last; ResNet-18 and
the U-Net are not. training.classification sets ``cpu_channels_last`` from this. Run:

    .venv/bin/python benchmarks/cpu_memory_format.py            # all models, 1 thread
    .venv/bin/python benchmarks/cpu_memory_format.py --steps 30 shallow_cnn

Prints the median step time of each layout (alternating, so drift hits both) and the ratio
NCHW / channels-last (> 1: channels-last is faster).
"""

import argparse
import statistics
import time

import torch

MODELS = {  # name -> (builder, batch shape): the demo's settings
    "shallow_cnn": (lambda: _shallow(), (16, 3, 72, 48)),
    "resnet18": (lambda: __import__("torchvision").models.resnet18(num_classes=14), (16, 3, 72, 48)),
    "unet": (lambda: _unet(), (4, 3, 64, 64)),
}


def _shallow():
    from fashion_rembg.models.classifiers import ShallowCNN

    return ShallowCNN(14, width=16, blocks=3)


def _unet():
    import segmentation_models_pytorch as smp

    return smp.Unet("resnet18", encoder_weights=None, classes=14)


def step_times(name: str, channels_last: bool, steps: int) -> list[float]:
    torch.manual_seed(0)
    build, shape = MODELS[name]
    model = build()
    x = torch.randn(*shape)
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    times = []
    for _ in range(steps + 2):  # two warm-up steps
        start = time.perf_counter()
        out = model(x)
        target = torch.randint(0, 14, (shape[0],) if out.ndim == 2 else (shape[0], *out.shape[2:]))
        opt.zero_grad()
        torch.nn.functional.cross_entropy(out, target).backward()
        opt.step()
        times.append(time.perf_counter() - start)
    return times[2:]


def model_parser(doc: str, steps: int) -> argparse.ArgumentParser:
    """The command line of the benchmarks on MODELS: which models (default: all), steps per run."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", help=f"any of {', '.join(MODELS)} (default: all)")
    parser.add_argument("--steps", type=int, default=steps)
    return parser


def chosen_models(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    models = args.models or list(MODELS)
    if unknown := sorted(set(models) - set(MODELS)):
        parser.error(f"unknown model(s) {unknown}; choose from {list(MODELS)}")
    return models


def main() -> None:
    parser = model_parser(__doc__, steps=12)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    models = chosen_models(parser, args)
    torch.set_num_threads(args.threads)
    print("model\tNCHW ms/step\tchannels-last ms/step\tNCHW / channels-last")
    for name in models:
        nchw, last = [], []
        for _ in range(2):  # alternate the layouts
            nchw += step_times(name, False, args.steps)
            last += step_times(name, True, args.steps)
        a, b = statistics.median(nchw) * 1000, statistics.median(last) * 1000
        print(f"{name}\t{a:.1f}\t{b:.1f}\t{a / b:.2f}")


if __name__ == "__main__":
    main()
