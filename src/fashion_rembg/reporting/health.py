"""Run health: did a training run learn at all? Flags that every table and the report show.

* ``collapsed`` – the model predicts a single class for every test image (classification) or
  every test pixel (segmentation), or (classification) its validation accuracy never rose above
  ``chance_factor`` × chance (1 / number of classes) in any epoch; (instance) no detection with
  score ≥ 0.5 matches an object on any test image (every per-image segm quality is 0), or its
  val segm AP never rose above ``instance_ap_floor``;
* ``diverged`` – a non-finite loss in the history, or a training loss above ``explode_factor`` ×
  the first epoch's;
* ``underfit`` – the kept model's score on its own training images without augmentation
  (``train_score`` in metrics.json: top-1 for classification, mIoU for segmentation; older runs
  without it: the last epoch's running training score in history.csv) is below
  ``underfit_score[task]``.

A run with none of these is ``ok``. The thresholds are deliberately loose: a flag means the
number in the table says little about the images, not that the model is merely mediocre.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["FLAGS", "HealthThresholds", "assess_run", "combine_flags"]

FLAGS = ("collapsed", "diverged", "underfit")  # display order


@dataclass(frozen=True)
class HealthThresholds:
    chance_factor: float = 1.25
    instance_ap_floor: float = 0.01
    explode_factor: float = 5.0
    underfit_score: dict = field(default_factory=lambda: {"classification": 0.6, "segmentation": 0.3})


def assess_run(task: str, history: pd.DataFrame | None, n_classes: int | None,
               n_predicted_classes: int | None, thresholds: HealthThresholds = HealthThresholds(),
               train_score: float | None = None, matched_images: int | None = None) -> list[str]:
    """Reasons, each starting with its flag (e.g. ``"underfit: final train top-1 0.23 < 0.60"``);
    empty when the run looks healthy. ``history``: the run's history.csv (None: not checked);
    ``n_predicted_classes``: distinct classes predicted on the test set (None: not checked);
    ``matched_images`` (instance): test images with a per-image segm quality above 0 (None: not checked)."""
    reasons = []
    if n_predicted_classes is not None and n_predicted_classes <= 1:
        unit = "image" if task == "classification" else "pixel"
        reasons.append(f"collapsed: one predicted class for every test {unit}")
    if matched_images == 0:
        reasons.append("collapsed: no detection with score ≥ 0.5 matches an object on any test image")
    if history is None or history.empty:
        return reasons
    # A column that is NaN in every epoch was not computed (Mask R-CNN has no val loss in eval mode).
    losses = history[[c for c in ("train_loss", "val_loss") if c in history and history[c].notna().any()]]
    losses = losses.to_numpy(dtype=float)
    val = history["val_score"].to_numpy(dtype=float) if "val_score" in history else np.array([])
    if task == "classification" and n_classes and val.size and not reasons:
        chance = 1.0 / n_classes
        if np.all(val <= thresholds.chance_factor * chance):
            reasons.append(f"collapsed: val accuracy ≤ {thresholds.chance_factor:g} × chance ({chance:.3f}) "
                           f"in all {val.size} epochs")  # fmt: skip
    if task == "instance" and val.size and not reasons and np.all(val <= thresholds.instance_ap_floor):
        reasons.append(f"collapsed: val segm AP ≤ {thresholds.instance_ap_floor:g} in all {val.size} epochs")
    if not np.all(np.isfinite(losses)):
        reasons.append("diverged: non-finite loss")
    elif "train_loss" in history:
        train = history["train_loss"].to_numpy(dtype=float)
        if train.size > 1 and train.max() > thresholds.explode_factor * train[0]:
            reasons.append(f"diverged: train loss {train.max():.3g} > {thresholds.explode_factor:g} × "
                           f"first epoch's {train[0]:.3g}")  # fmt: skip
    limit = thresholds.underfit_score.get(task)
    what = "top-1" if task == "classification" else "mIoU"
    if limit is not None and train_score is not None:  # the kept model on its training images
        if math.isfinite(train_score) and train_score < limit:
            reasons.append(f"underfit: train {what} of the kept model {train_score:.2f} < {limit:.2f}")
    elif limit is not None and "train_score" in history:  # older runs: the last epoch's running score
        final = float(history["train_score"].iloc[-1])
        if math.isfinite(final) and final < limit:
            reasons.append(f"underfit: final train {what} {final:.2f} < {limit:.2f}")
    return reasons


def combine_flags(reason_lists) -> str:
    """``ok``, or the flags present in any of the runs, ``;``-joined in :data:`FLAGS` order."""
    present = {r.split(":", 1)[0] for reasons in reason_lists for r in reasons}
    return ";".join(f for f in FLAGS if f in present) or "ok"
