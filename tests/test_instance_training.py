"""Instance task: deterministic Mask R-CNN steps on CPU, train/evaluate writing re-scorable COCO files."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from fashion_rembg.datasets.coco import ClassMapping
from fashion_rembg.datasets.instances import InstanceStore, InstanceStoreWriter, fit_instances
from fashion_rembg.evaluation.coco_eval import rescore
from fashion_rembg.models.detectors import build_instance_model
from fashion_rembg.training.instance import evaluate_instance, train_instance, train_one_epoch, training_rows
from fashion_rembg.training.loop import epoch_generator, seed_everything

H, W = 64, 96
SPLITS = ["train"] * 6 + ["val"] * 2 + ["test"] * 2
COLOURS = {1: (220, 30, 30), 2: (30, 60, 230)}


def make_stores(root, seed=0):
    """Photos of 2 coloured rectangles (one per class) + their COCO polygons; train row 5 is crowd-only."""
    rng = np.random.default_rng(seed)
    writer = InstanceStoreWriter(root / "inst", (H, W), ["background", "red", "blue"])
    images, rows = [], []
    for i, split in enumerate(SPLITS):
        img = rng.integers(100, 150, size=(H, W, 3), dtype=np.uint8)
        anns = []
        for cat in (1, 2):
            h, w = rng.integers(14, 30, size=2)
            y0, x0 = int(rng.integers(0, H - h)), int(rng.integers(0, W - w))
            img[y0 : y0 + h, x0 : x0 + w] = COLOURS[cat]
            anns.append({"id": len(anns) + 1, "category_id": cat, "iscrowd": int(i == 5),
                         "segmentation": [[x0, y0, x0 + w, y0, x0 + w, y0 + h, x0, y0 + h]]})
        instances, drops = fit_instances(anns, H, W, ClassMapping({1: 1, 2: 2}, known=[1, 2]), (H, W))
        writer.put(f"img{i}", instances, drops)
        images.append(img)
        rows.append({"index": i, "id": f"img{i}", "source": f"img{i}.jpg", "split": split, "label": "",
                     "label_idx": 0, "note": ""})
    writer.finish()
    np.save(root / "images.npy", np.stack(images))
    np.save(root / "rembg.npy", np.stack(images) // 2 + 60)  # a second condition, same rows
    pd.DataFrame(rows).to_csv(root / "manifest.tsv", sep="\t", index=False)
    return root


def two_steps(root, seed):
    seed_everything(seed, 2)
    store = InstanceStore(root / "inst")
    images = np.load(root / "images.npy", mmap_mode="r")
    model = build_instance_model("maskrcnn_resnet18_fpn", 3, image_size=(H, W))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    rows = training_rows(store, np.arange(6))
    train_one_epoch(model, optimizer, images, store, rows, 2, epoch_generator(seed, 1), max_steps=2)
    return {k: v.detach().numpy().tobytes() for k, v in model.state_dict().items()}


def test_crowd_only_images_are_left_out_of_training(tmp_path):
    store = InstanceStore(make_stores(tmp_path) / "inst")
    assert store.crowd_only(5)
    assert training_rows(store, np.arange(6)).tolist() == [0, 1, 2, 3, 4]


def test_same_seed_gives_byte_identical_weights_after_two_steps(tmp_path):
    root = make_stores(tmp_path)
    first, second = two_steps(root, 7), two_steps(root, 7)
    assert first.keys() == second.keys() and all(first[k] == second[k] for k in first)
    other = two_steps(root, 8)
    assert any(first[k] != other[k] for k in first)


def test_train_and_evaluate_write_rescorable_coco_files(tmp_path):
    root = make_stores(tmp_path)
    experiment = {"id": "inst-test", "arch": "maskrcnn_resnet18_fpn", "epochs": 1, "batch_size": 3, "lr": 0.005,
                  "weight_decay": 1e-4}
    result = train_instance(images=root / "images.npy", instances_dir=root / "inst", manifest=root / "manifest.tsv",
                            model_out=root / "model.pt", history_out=root / "history.json", experiment=experiment,
                            seed=0, threads=2)
    assert result["best_epoch"] == 1 and json.loads((root / "history.json").read_text())[0]["epoch"] == 1
    conditions = [{"key": "original", "images": root / "images.npy"}, {"key": "rembg", "images": root / "rembg.npy"}]
    metrics = evaluate_instance(model=root / "model.pt", instances_dir=root / "inst", manifest=root / "manifest.tsv",
                                conditions=conditions, out_dir=root / "eval", experiment=experiment, seed=0, threads=2)
    assert [c["condition"] for c in metrics["cross"]] == ["original", "rembg"]
    own = metrics["metrics"]
    assert own["per_image"]["image_ids"] == [8, 9] and len(own["per_image"]["segm_quality"]) == 2
    assert json.loads((root / "eval" / "metrics.json").read_text())["experiment"] == "inst-test"
    for cond in metrics["cross"]:
        folder = root / "eval" / cond["condition"]
        for iou_type in ("segm", "bbox"):
            if json.loads((folder / f"results_{iou_type}.json").read_text()):
                assert rescore(folder / "ground_truth.json", folder / f"results_{iou_type}.json", iou_type) == \
                    cond[iou_type]


def test_mismatched_stores_are_refused(tmp_path):
    root = make_stores(tmp_path)
    np.save(root / "small.npy", np.zeros((10, 32, 32, 3), np.uint8))
    experiment = {"id": "x", "arch": "maskrcnn_resnet18_fpn", "epochs": 1, "batch_size": 2, "lr": 0.01,
                  "weight_decay": 0.0}
    with pytest.raises(ValueError, match="does not match the instance store"):
        train_instance(images=root / "small.npy", instances_dir=root / "inst", manifest=root / "manifest.tsv",
                       model_out=root / "m.pt", history_out=root / "h.json", experiment=experiment, seed=0)
