"""Instance task through the shared run drivers: history, metrics.json, predictions.npz, re-scorable COCO
files, byte-identical resume after an interrupted run, determinism per seed."""
import json
import logging

import numpy as np
import pandas as pd
import pytest
import torch

from fashion_rembg.datasets.coco import ClassMapping
from fashion_rembg.datasets.instances import InstanceStore, InstanceStoreWriter, fit_instances
from fashion_rembg.evaluation.coco_eval import rescore
from fashion_rembg.training.checkpoint import Checkpointer
from fashion_rembg.training.instance import evaluate_instance, train_instance, training_rows

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


EXPERIMENT = {"id": "inst-test", "task": "instance", "dataset": "toy", "arch": "maskrcnn_resnet18_fpn",
              "variant": "original", "init": "scratch", "epochs": 2, "batch_size": 3, "lr": 0.005,
              "optimizer": "sgd", "weight_decay": 1e-4, "augment": "none", "amp": False}
CONDITIONS = [{"key": "original", "variant": "original"}, {"key": "rembg", "variant": "rembg", "sod": "demo-sod"}]


def train(root, out, seed=0, experiment=EXPERIMENT, checkpoint=True):
    return train_instance(images=root / "images.npy", instances_dir=root / "inst", manifest=root / "manifest.tsv",
                          model_out=out / "model.pt", history_out=out / "history.csv", experiment=experiment,
                          seed=seed, threads=1, checkpoint_dir=out / "ckpt" if checkpoint else None)


def evaluate(root, out, seed=0):
    conditions = [dict(c, images=root / ("images.npy" if c["key"] == "original" else "rembg.npy")) for c in CONDITIONS]
    return evaluate_instance(model=out / "model.pt", instances_dir=root / "inst", manifest=root / "manifest.tsv",
                             conditions=conditions, metrics_out=out / "metrics.json",
                             predictions_out=out / "predictions.npz", coco_dir=out / "coco", experiment=EXPERIMENT,
                             seed=seed, threads=1)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted 2-epoch run + evaluation on the toy stores (seed 0)."""
    root = make_stores(tmp_path_factory.mktemp("stores"))
    out = tmp_path_factory.mktemp("reference")
    train(root, out)
    evaluate(root, out)
    return root, out


def test_crowd_only_images_are_left_out_of_training(tmp_path):
    store = InstanceStore(make_stores(tmp_path) / "inst")
    assert store.crowd_only(5)
    assert training_rows(store, np.arange(6)).tolist() == [0, 1, 2, 3, 4]


def test_run_writes_history_metrics_and_rescorable_coco_files(reference):
    root, out = reference
    history = pd.read_csv(out / "history.csv")
    assert history["epoch"].tolist() == [1, 2] and history["val_loss"].isna().all()  # no losses in eval mode
    assert history["val_score"].between(0, 1).all() and np.isfinite(history["train_loss"]).all()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["experiment"]["id"] == "inst-test" and metrics["classes"] == ["background", "red", "blue"]
    own = metrics["metrics"]
    assert 0 <= own["segm_ap"] <= 1 and 0 <= own["bbox_ap"] <= 1 and set(own["per_class_segm_ap"]) <= {"red", "blue"}
    assert own["model_settings"]["fpn_channels"] == 64 and own["model_settings"]["mask_roi_size"] == 7  # toy heads
    assert [c["key"] for c in metrics["cross"]] == ["original", "rembg"]
    with np.load(out / "predictions.npz") as npz:
        assert npz["ids"].tolist() == ["img8", "img9"] and npz["conditions"].tolist() == ["original", "rembg"]
        quality = npz["quality_original"]
    assert quality.shape == (2,) and np.isclose(quality.mean(), own["mean_segm_quality"], atol=1e-6)
    for cond in metrics["cross"]:
        folder = out / "coco" / cond["key"]
        for iou_type in ("segm", "bbox"):
            rescored = rescore(folder / "ground_truth.json", folder / f"results_{iou_type}.json", iou_type)
            assert rescored["AP"] == cond["metrics"][f"{iou_type}_ap"], (cond["key"], iou_type)


def test_interrupted_run_resumes_byte_identical(reference, tmp_path, monkeypatch, caplog):
    root, ref = reference
    save = Checkpointer.save

    def save_then_crash(self, state):
        save(self, state)
        raise KeyboardInterrupt("killed after epoch 1")

    monkeypatch.setattr(Checkpointer, "save", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        train(root, tmp_path)
    assert not (tmp_path / "model.pt").exists() and (tmp_path / "ckpt" / "last.pt").is_file()
    monkeypatch.setattr(Checkpointer, "save", save)
    with caplog.at_level(logging.INFO, logger="fashion_rembg.training"):
        train(root, tmp_path)
    assert "after epoch 1" in caplog.text  # resumed, not started over
    evaluate(root, tmp_path)
    for name in ("history.csv", "metrics.json", "predictions.npz", "coco/rembg/results_segm.json"):
        assert (tmp_path / name).read_bytes() == (ref / name).read_bytes(), name
    resumed, uninterrupted = torch.load(tmp_path / "model.pt"), torch.load(ref / "model.pt")
    assert all(torch.equal(resumed["state_dict"][k], v) for k, v in uninterrupted["state_dict"].items())


def test_other_seed_gives_other_weights(reference, tmp_path):
    root, ref = reference
    train(root, tmp_path, seed=1, experiment={**EXPERIMENT, "epochs": 1}, checkpoint=False)
    other, first = torch.load(tmp_path / "model.pt"), torch.load(ref / "model.pt")
    assert any(not torch.equal(other["state_dict"][k], v) for k, v in first["state_dict"].items())


def test_flips_are_refused(tmp_path):
    root = make_stores(tmp_path)
    with pytest.raises(ValueError, match="augment: none"):
        train(root, tmp_path, experiment={**EXPERIMENT, "augment": "flip"})


def test_mismatched_stores_are_refused(tmp_path):
    root = make_stores(tmp_path)
    np.save(root / "small.npy", np.zeros((10, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="do not match the instance store"):
        train_instance(images=root / "small.npy", instances_dir=root / "inst", manifest=root / "manifest.tsv",
                       model_out=root / "m.pt", history_out=root / "h.csv", experiment=EXPERIMENT, seed=0)
