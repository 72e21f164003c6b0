"""COCO AP of resampled test sets (evaluation.coco_resample) against pycocotools' COCOeval, and the
paired bootstrap / permutation statistics of Δ AP built on it (reporting.stats.paired_ap_delta)."""
import copy

import numpy as np
import pytest

from fashion_rembg.evaluation.coco_eval import _run, coco_from_dict
from fashion_rembg.evaluation.coco_resample import ap_matches, pooled_ap
from fashion_rembg.reporting.stats import paired_ap_delta


def _dataset(rng, n_images=14, n_classes=4, noise=3.0):
    """Random boxes with crowd regions, several classes, near-misses, wrong classes and false alarms."""
    images = [{"id": i + 1, "width": 64, "height": 64} for i in range(n_images)]
    gt = {"images": images, "categories": [{"id": c + 1, "name": f"c{c}"} for c in range(n_classes)],
          "annotations": []}  # fmt: skip
    results = []
    for image in images:
        for _ in range(rng.integers(0, 4)):
            x, y = rng.uniform(0, 40, 2)
            w, h = rng.uniform(5, 24, 2)
            cls = int(rng.integers(1, n_classes + 1))
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": image["id"], "category_id": cls,
                                      "bbox": [x, y, w, h], "area": w * h, "iscrowd": int(rng.random() < 0.1)})
            for _ in range(rng.integers(0, 3)):
                results.append({"image_id": image["id"],
                                "category_id": cls if rng.random() < 0.8 else int(rng.integers(1, n_classes + 1)),
                                "bbox": [x + rng.normal(0, noise), y + rng.normal(0, noise),
                                         w * rng.uniform(0.8, 1.2), h * rng.uniform(0.8, 1.2)],
                                "score": float(rng.random())})  # fmt: skip
        for _ in range(rng.integers(0, 3)):
            results.append({"image_id": image["id"], "category_id": int(rng.integers(1, n_classes + 1)),
                            "bbox": [*rng.uniform(0, 40, 2), *rng.uniform(4, 20, 2)], "score": float(rng.random())})
    return gt, results


def _coco_ap(gt: dict, results: list) -> float:
    return _run(coco_from_dict(gt), copy.deepcopy(results), "bbox")[0]["AP"]


def _matches(gt: dict, results: list):
    coco = coco_from_dict(gt)
    return ap_matches(coco, copy.deepcopy(results), sorted(coco.getImgIds()), "bbox")


def _ap(matches, weights):
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    return pooled_ap([matches], [weights], weights)


def _replicated(gt: dict, results: list, counts) -> tuple[dict, list]:
    """The test set with image i present counts[i] times (new ids), objects and detections copied."""
    out, out_results = {"images": [], "categories": gt["categories"], "annotations": []}, []
    for count, image in zip(counts, gt["images"]):
        for _ in range(count):
            new_id = len(out["images"]) + 1000
            out["images"].append({**image, "id": new_id})
            for ann in (a for a in gt["annotations"] if a["image_id"] == image["id"]):
                out["annotations"].append({**ann, "id": len(out["annotations"]) + 1, "image_id": new_id})
            out_results += [{**r, "image_id": new_id} for r in results if r["image_id"] == image["id"]]
    return out, out_results


@pytest.mark.parametrize("seed", range(8))
def test_unit_weights_give_cocoevals_ap(seed):
    gt, results = _dataset(np.random.default_rng(seed), noise=1.0)
    assert _ap(_matches(gt, results), np.ones(len(gt["images"])))[0] == pytest.approx(_coco_ap(gt, results),
                                                                                        abs=1e-6)


@pytest.mark.parametrize("seed", range(8))
def test_image_counts_give_the_ap_of_the_replicated_test_set(seed):
    """A bootstrap resample (images drawn 0, 1, 2 times) scores like COCOeval on that very test set."""
    rng = np.random.default_rng(100 + seed)
    gt, results = _dataset(rng, noise=1.0)
    counts = rng.integers(0, 3, len(gt["images"]))
    counts[0] = 2
    replicated = _replicated(gt, results, counts)
    expected = _coco_ap(*replicated)
    assert _ap(_matches(gt, results), counts)[0] == pytest.approx(expected, abs=1e-6)
    # float32 sums (what the resampling uses) agree to ~1e-6
    m = _matches(gt, results)
    w = counts[None, :].astype(float)
    assert pooled_ap([m], [w], w, np.float32)[0] == pytest.approx(expected, abs=1e-5)


def test_pooling_two_runs_with_swaps_gives_the_swapped_test_set():
    """A permutation swaps whole images between two runs: the pooled AP equals COCOeval on the mixed
    detections."""
    rng = np.random.default_rng(7)
    gt, res_a = _dataset(rng, noise=1.0)
    _, res_b = _dataset(np.random.default_rng(8), noise=1.0)
    res_b = [r for r in res_b if r["image_id"] <= len(gt["images"])]  # other detections, same images
    swap = rng.integers(0, 2, len(gt["images"])).astype(float)
    ids = sorted(img["id"] for img in gt["images"])
    mixed = [r for r in res_a if not swap[ids.index(r["image_id"])]] + \
            [r for r in res_b if swap[ids.index(r["image_id"])]]  # fmt: skip
    a, b = _matches(gt, res_a), _matches(gt, res_b)
    ones = np.ones((1, len(ids)))
    pooled = pooled_ap([a, b], [(1 - swap)[None], swap[None]], ones)[0]
    assert pooled == pytest.approx(_coco_ap(gt, mixed), abs=1e-6)


def test_no_detections_and_no_objects():
    gt, results = _dataset(np.random.default_rng(3))
    empty = _matches(gt, [])
    assert _ap(empty, np.ones(len(gt["images"])))[0] == 0.0  # objects, nothing found: AP 0 as COCOeval
    weights = np.zeros((1, len(gt["images"])))
    assert np.isnan(_ap(_matches(gt, results), weights)[0])  # no image drawn: nothing to measure


def test_runs_on_other_images_are_refused():
    gt, results = _dataset(np.random.default_rng(4))
    other = copy.deepcopy(gt)
    other["annotations"] = other["annotations"][1:]
    a, b = _matches(gt, results), _matches(other, results)
    with pytest.raises(ValueError, match="different ground truth"):
        pooled_ap([a, b], [np.ones((1, len(gt["images"])))] * 2, np.ones((1, len(gt["images"]))))


def test_paired_ap_delta_finds_a_better_detector_and_not_a_copy():
    rng = np.random.default_rng(11)
    gt, _ = _dataset(rng, n_images=40, n_classes=3)
    # Detections of the same objects, sloppy (a) and tight (b): b's AP is clearly higher.
    sloppy, tight = [], []
    for ann in gt["annotations"]:
        x, y, w, h = ann["bbox"]
        for out, noise in ((sloppy, 4.0), (tight, 0.5)):
            out.append({"image_id": ann["image_id"], "category_id": ann["category_id"], "score": float(rng.random()),
                        "bbox": [x + rng.normal(0, noise), y + rng.normal(0, noise), w, h]})
    a, b = _matches(gt, sloppy), _matches(gt, tight)
    result = paired_ap_delta([a], [b], n_boot=300, n_perm=199, seed=0)
    assert result.delta == pytest.approx(_coco_ap(gt, tight) - _coco_ap(gt, sloppy), abs=1e-6)
    assert 0 < result.ci_low < result.delta < result.ci_high
    assert result.p_value == pytest.approx(1 / 200)  # no permutation reaches the observed Δ
    same = paired_ap_delta([a], [a], n_boot=100, n_perm=99, seed=0)
    assert same.delta == 0.0 and same.ci_low == same.ci_high == 0.0 and same.p_value == 1.0
    # Deterministic given the seed; two seeds average.
    assert paired_ap_delta([a], [b], n_boot=300, n_perm=199, seed=0) == result
    two = paired_ap_delta([a, a], [b, a], n_boot=100, n_perm=99, seed=0)
    assert two.delta == pytest.approx(result.delta / 2) and two.n_seeds == 2


def test_paired_ap_delta_rejects_unpaired_input():
    gt, results = _dataset(np.random.default_rng(5))
    m = _matches(gt, results)
    with pytest.raises(ValueError, match="same number"):
        paired_ap_delta([m], [m, m])
    with pytest.raises(ValueError, match="level"):
        paired_ap_delta([m], [m], level=1.5)


def test_pooled_runs_rank_score_ties_by_image_as_cocoeval():
    """Image 1 from run b and image 2 from run a, both with a detection at score 0.9: COCOeval ranks
    the tie by image, not by run."""
    box = {"category_id": 1, "area": 400, "iscrowd": 0, "bbox": [10, 10, 20, 20]}
    gt = {"images": [{"id": i, "width": 64, "height": 64} for i in (1, 2)], "categories": [{"id": 1, "name": "c"}],
          "annotations": [{**box, "id": i, "image_id": i} for i in (1, 2)]}  # fmt: skip
    hit, miss = [10, 10, 20, 20], [40, 40, 10, 10]
    run_a = [{"image_id": 1, "category_id": 1, "bbox": hit, "score": 0.3},
             {"image_id": 2, "category_id": 1, "bbox": miss, "score": 0.9},
             {"image_id": 2, "category_id": 1, "bbox": hit, "score": 0.2}]  # fmt: skip
    run_b = [{"image_id": 1, "category_id": 1, "bbox": hit, "score": 0.9},
             {"image_id": 2, "category_id": 1, "bbox": hit, "score": 0.2}]  # fmt: skip
    swap = np.array([1.0, 0.0])
    mixed = [r for r in run_a if r["image_id"] == 2] + [r for r in run_b if r["image_id"] == 1]
    pooled = pooled_ap([_matches(gt, run_a), _matches(gt, run_b)], [(1 - swap)[None], swap[None]], np.ones((1, 2)))[0]
    assert pooled == pytest.approx(_coco_ap(gt, mixed), abs=1e-6)


def test_image_order_is_cocoevals_and_no_objects_gives_no_p():
    gt, results = _dataset(np.random.default_rng(6), noise=1.0)
    ids = [img["id"] for img in gt["images"]]
    coco = coco_from_dict(gt)
    shuffled = ap_matches(coco, copy.deepcopy(results), ids[::-1], "bbox")
    assert list(shuffled.image_ids) == sorted(ids)
    assert _ap(shuffled, np.ones(len(ids)))[0] == pytest.approx(_coco_ap(gt, results), abs=1e-6)
    no_objects = {**gt, "annotations": []}
    m = _matches(no_objects, [])
    result = paired_ap_delta([m], [m], n_boot=10, n_perm=9)
    assert np.isnan(result.delta) and np.isnan(result.p_value) and np.isnan(result.ci_low)
