"""Images/s of Mask R-CNN training steps on toy images (CPU), to size the demo.

Usage: PYTHONPATH=src python benchmarks/maskrcnn_step_speed.py [--threads 2] [--batch 4] [--steps 5]
Times `--steps` training steps after 2 warm-up steps, each image 96×64 with 3 rectangles,
deterministic kernels on (as in the pipeline), with the toy-size RoI sampling (and with
torchvision's: `--torchvision-sampling`).
Wall-clock images/s depend on what else runs; CPU seconds per image (process time) much less so.
"""
import argparse
import time

import torch

from fashion_rembg.models.detectors import build_instance_model
from fashion_rembg.training.loop import seed_everything


def batch(n, h, w, gen):
    images, targets = [], []
    for _ in range(n):
        images.append(torch.rand(3, h, w, generator=gen))
        boxes, masks = [], []
        for _ in range(3):
            bh, bw = (int(v) for v in torch.randint(12, 28, (2,), generator=gen))
            y0, x0 = (
                int(torch.randint(0, h - bh, (1,), generator=gen)),
                int(torch.randint(0, w - bw, (1,), generator=gen)),
            )
            m = torch.zeros(h, w, dtype=torch.uint8)
            m[y0 : y0 + bh, x0 : x0 + bw] = 1
            boxes.append([x0, y0, x0 + bw, y0 + bh])
            masks.append(m)
        targets.append(
            {
                "boxes": torch.tensor(boxes, dtype=torch.float32),
                "labels": torch.tensor([1, 2, 1]),
                "masks": torch.stack(masks),
            }
        )
    return images, targets


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--arch", default="maskrcnn_resnet18_fpn")
    ap.add_argument("--torchvision-sampling", action="store_true", help="also time torchvision's RoI sampling")
    args = ap.parse_args()
    h, w = 64, 96
    # The toy-size defaults (64 RoIs/image, 300 proposals) and torchvision's (512, 2000).
    variants = (
        ("toy defaults", {}),
        (
            "torchvision sampling",
            {"box_batch_size_per_image": 512, "rpn_pre_nms_top_n_train": 2000, "rpn_post_nms_top_n_train": 2000},
        ),
    )
    for label, overrides in variants[: 2 if args.torchvision_sampling else 1]:
        seed_everything(0, args.threads)
        model = build_instance_model(args.arch, 3, image_size=(h, w), **overrides)
        opt = torch.optim.SGD(model.parameters(), lr=0.005, momentum=0.9)
        gen = torch.Generator().manual_seed(0)
        model.train()
        for step in range(2 + args.steps):
            if step == 2:
                started, cpu_started = time.perf_counter(), time.process_time()
            images, targets = batch(args.batch, h, w, gen)
            loss = sum(model(images, targets).values())
            opt.zero_grad()
            loss.backward()
            opt.step()
        seconds = time.perf_counter() - started
        cpu_per_image = (time.process_time() - cpu_started) / (args.steps * args.batch)
        print(
            f"{args.arch} {label}: {args.steps * args.batch / seconds:.2f} images/s "
            f"({seconds / args.steps:.2f} s/step, batch {args.batch}, {h}x{w}, {args.threads} threads); "
            f"{cpu_per_image:.2f} CPU-s/image "
            f"(load-robust: on idle cores ≈ {args.threads / cpu_per_image:.2f} images/s)"
        )


if __name__ == "__main__":
    main()
