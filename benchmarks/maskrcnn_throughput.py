"""Mask R-CNN training images/s: the pipeline's data path vs in-memory tensors vs a torchvision-references loop.

    .venv/bin/python benchmarks/maskrcnn_throughput.py                                  # CPU, resnet18 FPN, toy size
    .venv/bin/python benchmarks/maskrcnn_throughput.py --arch maskrcnn_resnet50_fpn_v2 --images 8 --batch-size 2
    .venv/bin/python benchmarks/maskrcnn_throughput.py --device cuda                    # GPU defaults (see --help)

Data: a Fashionpedia look-alike (``fashion_rembg.demo.fashionpedia``, the real raw format: COCO JSON
with polygons, compressed and uncompressed RLE and crowd regions, images in ``train2020.zip``),
prepared once by the pipeline's own ``prepare_fashionpedia(..., instances=True)`` into the image
store + instance store, and extracted once to JPEG files for the baseline. All three modes train the
same model (same arch, same seeded initial weights, SGD as in config/paper.yaml, batch size, AMP on
CUDA only) on the same images — the store's train rows, crowd-only images left out — in batches of
the same size:

  (a) pipeline: ``training.loop.train_one_epoch`` with the ``BatchFeeder`` over the memory-mapped
      store and ``training.instance.InstanceOps`` (targets decoded from the instance store's RLE per
      batch), i.e. what ``train_run`` does for an instance experiment, minus checkpoints;
  (b) in-memory: the same model stepped on batches (normalised images and target dicts) built
      beforehand on the device: pure model cost;
  (c) references: ``torchvision.datasets.CocoDetection`` over the extracted JPEGs, a
      ``ConvertCocoPolysToMask``-style transform (torchvision references/detection/coco_utils.py:
      crowd regions out, COCO ``bbox`` → XYXY, polygons/RLE → masks with pycocotools, degenerate
      boxes out; Fashionpedia's 0-based categories mapped to the 27 garment classes) and
      ``PILToTensor`` + ``ToDtype``, batched by a ``DataLoader`` with worker processes that decode the
      JPEGs every epoch; the model's own transform normalises and resizes to the store size.

Every mode runs one warm-up epoch, then ``--rounds`` epochs interleaved in a rotating order (load from
other processes hits all modes alike); images/s = the best epoch per mode. Ratios: a/b (goal >= 0.9)
and a/c (goal >= 1.5, a GPU goal: on a CPU the model dominates every path). The data paths are also
timed alone (no model).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
import zipfile
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parent / "out" / "maskrcnn_throughput"


def _pair(text: str) -> tuple[int, int]:
    a, b = (int(v) for v in text.lower().split("x"))
    return a, b


# --------------------------------------------------------------------------- data
def make_data(n: int, look_size: tuple[int, int], store_size: tuple[int, int], seed: int = 0) -> dict:
    """Fashionpedia look-alike with ``n`` train images (``look_size`` W×H at most), its pipeline store
    (``store_size`` H×W, instance store included) and the train images extracted as JPEG files."""
    from fashion_rembg.datasets.fashionpedia import prepare_fashionpedia
    from fashion_rembg.demo.fashionpedia import generate_fashionpedia

    raw = OUT / f"raw-{n}-{look_size[0]}x{look_size[1]}-seed{seed}"
    if not (raw / "demo_info.json").is_file():
        generate_fashionpedia(raw, seed=seed, train=n, val=2, test_unlabelled=0, size=look_size)
    extracted = raw / "extracted"
    if not (extracted / ".done").is_file():
        shutil.rmtree(extracted, ignore_errors=True)
        with zipfile.ZipFile(raw / "train2020.zip") as zf:
            zf.extractall(extracted)
        (extracted / ".done").touch()
    store = OUT / f"store-{raw.name}-{store_size[0]}x{store_size[1]}"
    if not (store / ".done").is_file():
        paths = {"train_annotations": raw / "instances_attributes_train2020.json",
                 "val_annotations": raw / "instances_attributes_val2020.json",
                 "train_images": raw / "train2020.zip", "val_images": raw / "val_test2020.zip"}
        # val_fraction 0: every official train image stays in the train split (the one benchmarked).
        prepare_fashionpedia(paths, store, store_size, "garments", val_fraction=0.0, seed=0, instances=True)
        (store / ".done").touch()
    return {"raw": raw, "images_dir": extracted / "train", "store": store,
            "annotations": raw / "instances_attributes_train2020.json"}


def experiment(args) -> dict:
    # config/paper.yaml's instance grid: SGD lr 0.02 (momentum 0.9), augment none.
    return {"id": "maskrcnn-throughput", "task": "instance", "dataset": "fashionpedia", "arch": args.arch,
            "variant": "original", "init": "scratch", "epochs": 10, "batch_size": args.batch_size, "lr": 0.02,
            "optimizer": "sgd", "weight_decay": 1e-4, "schedule": "constant", "augment": "none"}


class PipelineSide:
    """The pipeline's objects for the store, as ``train_task`` builds them."""

    def __init__(self, args, data: dict, device: torch.device):
        from fashion_rembg.training.data import BatchFeeder, split_indices
        from fashion_rembg.training.instance import InstanceTask
        from fashion_rembg.training.loop import TrainConfig

        self.task = InstanceTask(experiment(args), 0, data["store"], data["store"] / "manifest.tsv")
        store, self.names, targets = self.task.open(data["store"] / "images.npy", training=True)
        self.cfg = TrainConfig.from_experiment(experiment(args), 0)
        self.rows = split_indices(store.manifest, "train")
        self.feeder = BatchFeeder(store.images, targets, self.rows, batch_size=args.batch_size, device=device)
        self.ops = self.task.ops(self.names, evaluation=False)
        by_row = store.manifest.set_index("index")["id"]
        # manifest ids are "train-<COCO image id>": the baseline reads exactly these images
        self.coco_ids = [int(by_row[int(r)].split("-", 1)[1]) for r in self.rows]
        self.store = store

    def model(self, device: torch.device):
        from fashion_rembg.training.loop import place_model

        torch.manual_seed(0)
        return place_model(self.task.model_builder(self.names, self.store, init="scratch", torch_home=None)(), device)


def _state(model, cfg, device):
    from fashion_rembg.training.loop import TrainState

    return TrainState.create(model, cfg, device)


def _step(state, device, images, targets) -> None:
    """One optimiser step as ``train_one_epoch`` takes it."""
    from fashion_rembg.training.loop import autocast

    state.optimizer.zero_grad(set_to_none=True)
    with autocast(device, state.amp_dtype):
        loss = sum(state.model(images, targets).values())
    state.scaler.scale(loss).backward()
    state.scaler.step(state.optimizer)
    state.scaler.update()


def pipeline_runner(side: PipelineSide, device):
    from fashion_rembg.training.loop import train_one_epoch

    state = _state(side.model(device), side.cfg, device)
    epochs = iter(range(1, 10**6))

    def epoch() -> int:
        train_one_epoch(state, side.feeder, side.ops, side.cfg, next(epochs))
        return len(side.rows)

    return epoch


class _NoModel(torch.nn.Module):
    """Stands in for Mask R-CNN in ``InstanceOps.forward`` (train mode): the data path alone."""

    def forward(self, images, targets):
        return {"images": len(images), "targets": len(targets)}


def pipeline_data_runner(side: PipelineSide, device):
    from fashion_rembg.training.loop import epoch_generator, task_forward

    model = _NoModel().train()
    epochs = iter(range(1, 10**6))

    def epoch() -> int:
        seen = 0
        for x, y, _ in side.feeder.batches(generator=epoch_generator(0, next(epochs)), shuffle=True,
                                           drop_singleton=True):  # fmt: skip
            seen += task_forward(side.ops, model, x, y)["images"]
        return seen

    return epoch


def memory_runner(side: PipelineSide, device):
    """(b): the pipeline's first-epoch batches, built once and kept on the device."""
    from fashion_rembg.training.loop import epoch_generator

    batches = []
    for x, _, rows in side.feeder.batches(generator=epoch_generator(0, 1), shuffle=True, drop_singleton=True):
        targets = [{k: v.to(device) for k, v in side.ops.instances.target(int(r)).items() if k != "iscrowd"}
                   for r in rows.tolist()]  # fmt: skip
        batches.append((list(x.unbind(0)), targets))
    state = _state(side.model(device), side.cfg, device)
    n = sum(len(images) for images, _ in batches)

    def epoch() -> int:
        state.model.train()
        for images, targets in batches:
            _step(state, device, images, targets)
        return n

    return epoch


# --------------------------------------------------------------------------- torchvision-references baseline
def convert_coco_poly_to_mask(segmentations, height: int, width: int) -> torch.Tensor:
    """references/detection/coco_utils.py's function, plus compressed RLE (which its frPyObjects call
    cannot take; Fashionpedia has some): one (H, W) uint8 mask per annotation."""
    from pycocotools import mask as coco_mask

    masks = []
    for segm in segmentations:
        if isinstance(segm, dict) and isinstance(segm.get("counts"), str):
            rles = segm  # compressed RLE, as pycocotools' COCO.annToRLE passes it
        else:
            rles = coco_mask.frPyObjects(segm, height, width)
        mask = coco_mask.decode(rles)
        if len(mask.shape) < 3:
            mask = mask[..., None]
        masks.append(torch.as_tensor(mask, dtype=torch.uint8).any(dim=2))
    if masks:
        return torch.stack(masks).to(torch.uint8)
    return torch.zeros((0, height, width), dtype=torch.uint8)


class ConvertCocoPolysToMask:
    """references/detection/coco_utils.py's transform; ``label_of`` maps Fashionpedia's 0-based
    category ids to the 27 garment classes (None: a garment part, not a class)."""

    def __init__(self, label_of):
        self.label_of = label_of

    def __call__(self, image, anno):
        w, h = image.size
        anno = [obj for obj in anno if obj["iscrowd"] == 0 and self.label_of(obj["category_id"]) is not None]
        boxes = torch.as_tensor([obj["bbox"] for obj in anno], dtype=torch.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        boxes[:, 0::2].clamp_(min=0, max=w)
        boxes[:, 1::2].clamp_(min=0, max=h)
        labels = torch.tensor([self.label_of(obj["category_id"]) for obj in anno], dtype=torch.int64)
        masks = convert_coco_poly_to_mask([obj["segmentation"] for obj in anno], h, w)
        keep = (boxes[:, 3] > boxes[:, 1]) & (boxes[:, 2] > boxes[:, 0])
        return image, {"boxes": boxes[keep], "labels": labels[keep], "masks": masks[keep]}


class ReferenceTransforms:
    def __init__(self, label_of):
        from torchvision.transforms import v2

        self.convert = ConvertCocoPolysToMask(label_of)
        self.to_tensor = v2.Compose([v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True)])

    def __call__(self, image, anno):
        image, target = self.convert(image, anno)
        return self.to_tensor(image), target


def collate_fn(batch):
    return tuple(zip(*batch))


def reference_loader(args, side: PipelineSide, data: dict, device):
    from torchvision.datasets import CocoDetection

    from fashion_rembg.datasets.fashionpedia import class_mapping

    dataset = CocoDetection(str(data["images_dir"]), str(data["annotations"]),
                            transforms=ReferenceTransforms(class_mapping("garments")))  # fmt: skip
    dataset.ids = list(side.coco_ids)  # the pipeline's train rows, crowd-only images left out as there
    return torch.utils.data.DataLoader(
        dataset, batch_size=args.batch_size, shuffle=True, num_workers=args.workers, collate_fn=collate_fn,
        pin_memory=device.type == "cuda", persistent_workers=args.workers > 0,
        generator=torch.Generator().manual_seed(0),
    )


def _to_device(images, targets, device):
    images = [img.to(device, non_blocking=True) for img in images]
    return images, [{k: v.to(device, non_blocking=True) for k, v in t.items()} for t in targets]


def reference_runner(args, side: PipelineSide, data: dict, device):
    from fashion_rembg.models.detectors import build_instance_model
    from fashion_rembg.training.loop import place_model

    loader = reference_loader(args, side, data, device)
    torch.manual_seed(0)  # the same initial weights as (a) and (b)
    # torchvision's own transform: normalises [0, 1] images and resizes them to the store size.
    model = build_instance_model(args.arch, len(side.names), image_size=(side.task.instances.height,
                                                                                side.task.instances.width))
    state = _state(place_model(model, device), side.cfg, device)

    def epoch() -> int:
        state.model.train()
        seen = 0
        for images, targets in loader:
            if len(images) == 1 and len(loader.dataset) > 1:
                continue  # as the pipeline: a 1-image batch is skipped
            images, targets = _to_device(images, targets, device)
            _step(state, device, images, targets)
            seen += len(images)
        return seen

    return epoch


def reference_data_runner(args, side: PipelineSide, data: dict, device):
    loader = reference_loader(args, side, data, device)

    def epoch() -> int:
        seen = 0
        for images, targets in loader:
            images, _ = _to_device(images, targets, device)
            seen += len(images)
        return seen

    return epoch


# --------------------------------------------------------------------------- timing
def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(runners: dict, rounds: int, device) -> tuple[dict[str, float], list[dict[str, float]]]:
    """(best images/s per mode, images/s of every round). One warm-up epoch each, then ``rounds``
    epochs with the order rotated every round."""
    for epoch in runners.values():
        epoch()
        _sync(device)
    names, per_round = list(runners), []
    for r in range(rounds):
        speeds = {}
        for name in names[r % len(names):] + names[: r % len(names)]:
            start = time.perf_counter()
            seen = runners[name]()
            _sync(device)
            speeds[name] = seen / (time.perf_counter() - start)
        per_round.append(speeds)
        print(f"  round {r + 1}: " + "  ".join(f"{k} {v:.2f}" for k, v in speeds.items())
              + f" images/s  (load {os.getloadavg()[0]:.1f})", flush=True)
    best = {name: max(s[name] for s in per_round) for name in names}
    return best, per_round


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--arch", default="maskrcnn_resnet18_fpn",
                        help="maskrcnn_resnet18_fpn (light, the demo's) or maskrcnn_resnet50_fpn_v2 (the paper's)")
    parser.add_argument("--images", type=int, help="look-alike train images (default: CPU 16, CUDA 512)")
    parser.add_argument("--batch-size", type=int, help="default: CPU 4, CUDA 8")
    parser.add_argument("--size", type=_pair, help="look-alike photo W×H at most (default: CPU 128x192, "
                                                   "CUDA 512x768)")
    parser.add_argument("--store", type=_pair, help="store H×W (default: CPU 96x64 as the demo, CUDA 384x256 as "
                                                    "config/paper.yaml)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (the demo's threads_per_job: 1)")
    parser.add_argument("--workers", type=int, help="DataLoader workers of (c) (default: CPU 2, CUDA all cores)")
    parser.add_argument("--rounds", type=int, default=3, help="measured epochs per mode (best is reported)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device visible")
    args.images = args.images or (512 if cuda else 16)
    args.batch_size = args.batch_size or (8 if cuda else 4)
    args.size = args.size or ((512, 768) if cuda else (128, 192))
    args.store = args.store or ((384, 256) if cuda else (96, 64))
    args.workers = args.workers if args.workers is not None else (os.cpu_count() if cuda else 2)
    from fashion_rembg.training.loop import seed_everything

    seed_everything(0, args.threads)  # as train_run: deterministic kernels on CPU
    device = torch.device(args.device)
    started = time.perf_counter()
    data = make_data(args.images, args.size, args.store)
    side = PipelineSide(args, data, device)
    print(f"setup: {len(side.rows)} train images (look-alike ≤ {args.size[0]}×{args.size[1]}, store "
          f"{args.store[0]}×{args.store[1]}), {args.arch}, batch {args.batch_size}, {args.threads} threads, "
          f"{args.workers} loader workers for (c), device {args.device}"
          + (f" ({torch.cuda.get_device_name()})" if cuda else "")
          + f"; data ready in {time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip
    runners = {"a": pipeline_runner(side, device), "b": memory_runner(side, device),
               "c": reference_runner(args, side, data, device)}  # fmt: skip
    best, rounds = measure(runners, args.rounds, device)
    data_best, _ = measure({"a0": pipeline_data_runner(side, device),
                            "c0": reference_data_runner(args, side, data, device)}, args.rounds, device)  # fmt: skip
    a, b, c = best["a"], best["b"], best["c"]
    print(f"(a) pipeline (store + instance store)     {a:8.2f} images/s   "
          f"(its data path alone {data_best['a0']:8.0f} images/s)")
    print(f"(b) in-memory tensors (model only)        {b:8.2f} images/s")
    print(f"(c) CocoDetection + DataLoader ({args.workers} workers) {c:8.2f} images/s   "
          f"(its data path alone {data_best['c0']:8.0f} images/s)")
    med = {k: statistics.median(r["a"] / r[k] for r in rounds) for k in ("b", "c")}
    print(f"a/b = {a / b:.3f} (goal >= 0.9; median of per-round ratios {med['b']:.3f})   "
          f"a/c = {a / c:.3f} (goal >= 1.5 on GPU; median {med['c']:.3f})   "
          f"data paths alone a/c = {data_best['a0'] / data_best['c0']:.1f}   "
          f"[best of {args.rounds} interleaved epochs; load average {os.getloadavg()[0]:.1f}; "
          f"{time.perf_counter() - started:.0f} s in all]")
    result = {"device": args.device, "best": best, "rounds": rounds, "data_only": data_best,
              "a_over_b": a / b, "a_over_c": a / c, "median_a_over_b": med["b"], "median_a_over_c": med["c"],
              "data_only_ratio": data_best["a0"] / data_best["c0"], "load_average": os.getloadavg(),
              "settings": {k: str(v) for k, v in vars(args).items()}}  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
