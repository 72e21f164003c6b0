"""Tests for fashion_rembg.reporting (aggregation tables and figures)."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fashion_rembg.reporting import aggregate as agg
from fashion_rembg.reporting import examples, loading, plots, tables

# Known numbers: top1 per (arch, variant) and seed 0, 1.
TOP1 = {
    ("resnet50", "original"): [0.60, 0.64],
    ("resnet50", "rembg"): [0.65, 0.66],  # per-seed diffs 0.05, 0.02
    ("vgg16", "original"): [0.70, 0.71],
    ("vgg16", "rembg"): [0.66, 0.69],  # per-seed diffs -0.04, -0.02
}
MIOU = {"original": [0.40, 0.44], "rembg": [0.47, 0.49]}


def _write_run(root: Path, exp: dict, seed: int, metrics: dict, epochs: int = 4) -> Path:
    d = root / exp["task"] / exp["id"] / f"seed-{seed}"
    d.mkdir(parents=True, exist_ok=True)
    (d / "metrics.json").write_text(
        json.dumps({"experiment": exp, "seed": seed, "device": "cpu", "classes": ["a", "b"],
                    "metrics": metrics}, indent=2)
    )
    lines = ["epoch,train_loss,train_score,val_loss,val_score,lr"]
    for e in range(1, epochs + 1):
        # val_score = 0.1 * epoch + 0.01 * seed: mean over seeds 0/1 is 0.1 * epoch + 0.005
        lines.append(f"{e},{1.0 / e + seed},{0.1 * e},{1.0 / e},{0.1 * e + 0.01 * seed},0.001")
    (d / "history.csv").write_text("\n".join(lines) + "\n")
    return d / "metrics.json"


def _cls_exp(arch: str, variant: str) -> dict:
    rembg = variant == "rembg"
    return {
        "id": f"fs14-{arch}-{variant}", "task": "classification", "dataset": "fashionstyle14",
        "arch": arch, "variant": variant, "sod": "u2net" if rembg else None,
        "fill": "white" if rembg else None, "lr": 0.001, "epochs": 4, "image_size": [64, 48],
    }


def _seg_exp(variant: str) -> dict:
    rembg = variant == "rembg"
    return {
        "id": f"modanet-unet-{variant}", "task": "segmentation", "dataset": "modanet",
        "arch": "unet", "variant": variant, "sod": "u2net" if rembg else None,
        "fill": "white" if rembg else None, "lr": 0.01, "epochs": 4,
    }


@pytest.fixture()
def run_files(tmp_path: Path) -> list[Path]:
    files = []
    for (arch, variant), values in TOP1.items():
        for seed, top1 in enumerate(values):
            metrics = {"top1": top1, "top5": 0.9 + 0.01 * seed, "macro_f1": top1 - 0.1,
                       "per_class_recall": [0.5, 0.5], "confusion_matrix": [[1, 0], [0, 1]],
                       "best_epoch": 2 + seed}
            files.append(_write_run(tmp_path / "runs", _cls_exp(arch, variant), seed, metrics))
    for variant, values in MIOU.items():
        for seed, miou in enumerate(values):
            metrics = {"miou": miou, "pixel_accuracy": 0.8 + 0.02 * seed,
                       "per_class_iou": {"background": 0.9, "bag": None}, "best_epoch": 3}
            files.append(_write_run(tmp_path / "runs", _seg_exp(variant), seed, metrics))
    return files


def _quality(tmp_path: Path) -> pd.DataFrame:
    q = tmp_path / "quality.json"
    q.write_text(json.dumps({"n": 10, "mean_iou": 0.8123, "mean_mae": 0.05, "mean_fbeta": 0.9,
                             "baseline_iou_all_foreground": 0.41, "baseline_iou_center_prior": 0.55,
                             "per_image": [0.1, 0.2]}))
    return loading.load_quality([q], [("demo", "u2net")])


def _row(summary: pd.DataFrame, **where) -> pd.Series:
    sel = np.ones(len(summary), bool)
    for k, v in where.items():
        sel &= (summary[k] == v).to_numpy()
    assert sel.sum() == 1, where
    return summary[sel].iloc[0]


# ---------------------------------------------------------------------------- loading


def test_load_runs_columns_and_order(run_files):
    runs = loading.load_runs(run_files)
    assert len(runs) == 12
    for col in ("id", "task", "dataset", "arch", "variant", "sod", "fill", "lr", "image_size",
                "seed", "top1", "top5", "macro_f1", "miou", "pixel_accuracy"):
        assert col in runs.columns, col
    # Non-scalar metrics are not columns; list-valued experiment fields become JSON text.
    assert "confusion_matrix" not in runs.columns and "per_class_iou" not in runs.columns
    assert set(runs.loc[runs["task"] == "classification", "image_size"]) == {"[64,48]"}
    assert runs.loc[(runs["id"] == "fs14-vgg16-rembg") & (runs["seed"] == 1), "top1"].item() == 0.69
    assert runs.loc[runs["variant"] == "original", "sod"].isna().all()
    # File order does not matter.
    pd.testing.assert_frame_equal(runs, loading.load_runs(list(reversed(run_files))))


def test_malformed_json_names_file(run_files, tmp_path):
    bad = tmp_path / "broken" / "metrics.json"
    bad.parent.mkdir()
    bad.write_text('{"experiment": {"id": "x"')
    with pytest.raises(ValueError, match=r"broken.*metrics\.json.*malformed"):
        loading.load_runs(run_files + [bad])


def test_missing_keys_name_file_and_key(tmp_path):
    f = tmp_path / "nometrics.json"
    f.write_text(json.dumps({"experiment": _cls_exp("resnet50", "original"), "seed": 0}))
    with pytest.raises(ValueError, match=r"nometrics\.json.*'metrics'"):
        loading.load_runs([f])
    exp = _cls_exp("resnet50", "original")
    del exp["arch"]
    g = tmp_path / "noarch.json"
    g.write_text(json.dumps({"experiment": exp, "seed": 0, "metrics": {"top1": 0.5}}))
    with pytest.raises(ValueError, match=r"noarch\.json.*'arch'"):
        loading.load_runs([g])
    h = tmp_path / "noprimary.json"
    h.write_text(json.dumps({"experiment": _seg_exp("rembg"), "seed": 0, "metrics": {"pixel_accuracy": 0.5}}))
    with pytest.raises(ValueError, match=r"noprimary\.json.*miou"):
        loading.load_runs([h])


def test_duplicate_run_rejected(run_files, tmp_path):
    dup = tmp_path / "copy.json"
    dup.write_text(run_files[0].read_text())
    with pytest.raises(ValueError, match="duplicate run.*copy.json"):
        loading.load_runs(run_files + [dup])


# -------------------------------------------------------------------------- summarising


def test_summarize_means_stds_and_paired_delta(run_files):
    summary = agg.summarize(loading.load_runs(run_files))
    assert len(summary) == 6
    # Stable order: classification first, configs by arch, original before rembg.
    assert list(summary["task"]) == ["classification"] * 4 + ["segmentation"] * 2
    assert list(summary["arch"][:4]) == ["resnet50", "resnet50", "vgg16", "vgg16"]
    assert list(summary["variant"]) == ["original", "rembg"] * 3
    assert list(summary.columns[:3]) == ["task", "dataset", "arch"]

    for (arch, variant), values in TOP1.items():
        r = _row(summary, arch=arch, variant=variant)
        assert r["n_seeds"] == 2 and r["seeds"] == "0;1"
        assert r["top1_mean"] == pytest.approx(statistics.mean(values), abs=1e-12)
        assert r["top1_std"] == pytest.approx(statistics.stdev(values), abs=1e-12)
        assert r["primary_metric"] == "top1"
        assert r["condition"] == ("rembg (u2net, white)" if variant == "rembg" else "original")
    for arch in ("resnet50", "vgg16"):
        orig, rem = TOP1[(arch, "original")], TOP1[(arch, "rembg")]
        r = _row(summary, arch=arch, variant="rembg")
        diffs = [b - a for a, b in zip(orig, rem)]
        assert r["delta"] == pytest.approx(statistics.mean(rem) - statistics.mean(orig), abs=1e-12)
        assert r["delta_std"] == pytest.approx(statistics.stdev(diffs), abs=1e-12)
        assert r["paired"] is True or r["paired"] == True  # noqa: E712
        # Paired std differs from the unpaired formula here, so pairing really happened.
        assert r["delta_std"] != pytest.approx(math.hypot(statistics.stdev(orig), statistics.stdev(rem)))
        assert math.isnan(_row(summary, arch=arch, variant="original")["delta"])

    seg = _row(summary, task="segmentation", variant="rembg")
    assert seg["primary_metric"] == "miou"
    assert seg["miou_mean"] == pytest.approx(0.48, abs=1e-12)
    assert seg["delta"] == pytest.approx(0.48 - 0.42, abs=1e-12)
    assert seg["delta_std"] == pytest.approx(statistics.stdev([0.07, 0.05]), abs=1e-12)
    assert math.isnan(seg["top1_mean"])
    # Configuration labels only mention what varies (the arch).
    assert set(summary["config_label"]) == {"resnet50", "vgg16", "unet"}


def test_unpaired_delta_when_seeds_differ(run_files, tmp_path):
    extra = _write_run(tmp_path / "runs", _cls_exp("resnet50", "rembg"), 2,
                       {"top1": 0.70, "top5": 0.9, "macro_f1": 0.6})
    summary = agg.summarize(loading.load_runs(run_files + [extra]))
    r = _row(summary, arch="resnet50", variant="rembg")
    rem, orig = [0.65, 0.66, 0.70], TOP1[("resnet50", "original")]
    assert r["n_seeds"] == 3 and r["seeds"] == "0;1;2"
    assert not r["paired"]
    assert r["delta"] == pytest.approx(statistics.mean(rem) - statistics.mean(orig), abs=1e-12)
    assert r["delta_std"] == pytest.approx(math.hypot(statistics.stdev(rem), statistics.stdev(orig)), abs=1e-12)


def test_rembg_conditions_compared_with_same_configuration_only(run_files, tmp_path):
    # A second rembg condition and a different lr (= different configuration).
    exp = _cls_exp("resnet50", "rembg") | {"id": "fs14-resnet50-isnet", "sod": "isnet", "fill": "black"}
    other = _cls_exp("resnet50", "original") | {"id": "fs14-resnet50-lr01", "lr": 0.01}
    extra = [_write_run(tmp_path / "r", exp, s, {"top1": v}) for s, v in enumerate([0.5, 0.52])]
    extra.append(_write_run(tmp_path / "r", other, 0, {"top1": 0.1}))
    summary = agg.summarize(loading.load_runs(run_files + extra))
    isnet = _row(summary, sod="isnet")
    assert isnet["condition"] == "rembg (isnet, black)"
    assert isnet["delta"] == pytest.approx(0.51 - 0.62, abs=1e-12)
    assert isnet["config_label"] == "resnet50"  # the usual lr is not spelled out
    assert _row(summary, id="fs14-resnet50-lr01")["config_label"] == "resnet50 (lr=0.01)"


# ------------------------------------------------------------------------------ tables


def test_write_tables_markdown_and_csv(run_files, tmp_path):
    summary = agg.summarize(loading.load_runs(run_files))
    quality = _quality(tmp_path)
    csv, md = tmp_path / "out" / "summary.csv", tmp_path / "out" / "summary.md"
    tables.write_tables(summary, quality, csv, md)
    text = md.read_text()
    assert "## Classification" in text and "## Segmentation" in text
    assert "0.620 ± 0.028" in text  # resnet50 original: mean(0.60, 0.64), stdev 0.0283
    assert "0.655 ± 0.007" in text  # resnet50 rembg
    assert "+0.035 ± 0.021" in text  # paired delta resnet50
    assert "-0.030 ± 0.014" in text  # paired delta vgg16 (negative)
    assert "+0.060 ± 0.014" in text  # segmentation delta
    assert "## Saliency mask quality" in text
    assert "| demo | u2net | 10 | 0.812 | 0.050 | 0.900 | 0.410 | 0.550 |" in text
    back = pd.read_csv(csv)
    assert len(back) == 6
    assert back.loc[1, "top1_mean"] == pytest.approx(0.655)
    assert pd.isna(back.loc[0, "paired"]) and str(back.loc[1, "paired"]).lower() == "true"

    # Same inputs (in another order) → same bytes; no quality → no quality section.
    csv2, md2 = tmp_path / "b.csv", tmp_path / "b.md"
    tables.write_tables(agg.summarize(loading.load_runs(list(reversed(run_files)))), quality, csv2, md2)
    assert csv.read_bytes() == csv2.read_bytes() and md.read_bytes() == md2.read_bytes()
    tables.write_tables(summary, None, csv2, md2)
    assert "Saliency" not in md2.read_text()


def test_fmt_mean_std():
    assert tables.fmt_mean_std(0.6134, 0.0214) == "0.613 ± 0.021"
    assert tables.fmt_mean_std(0.034, 0.01, signed=True) == "+0.034 ± 0.010"
    assert tables.fmt_mean_std(-0.0001, 0.01, signed=True) == "+0.000 ± 0.010"
    assert tables.fmt_mean_std(0.5, math.nan) == "0.500"
    assert tables.fmt_mean_std(math.nan, math.nan) == "–"


def test_load_quality_errors(tmp_path):
    good = tmp_path / "q.json"
    good.write_text(json.dumps({"n": 3, "mean_iou": 0.5, "mean_mae": 0.1, "mean_fbeta": 0.6}))
    q = loading.load_quality([good], [("demo", "u2net")])
    assert math.isnan(q.loc[0, "baseline_iou_center_prior"])  # optional baselines → NaN
    bad = tmp_path / "q_bad.json"
    bad.write_text(json.dumps({"n": 3, "mean_iou": 0.5}))
    with pytest.raises(ValueError, match=r"q_bad\.json.*mean_mae"):
        loading.load_quality([bad], [("demo", "u2net")])
    with pytest.raises(ValueError, match="2 .*keys"):
        loading.load_quality([good], [("a", "b"), ("c", "d")])


def test_single_seed_does_not_crash(tmp_path):
    files = [_write_run(tmp_path, _cls_exp("resnet50", v), 0, {"top1": t})
             for v, t in (("original", 0.6), ("rembg", 0.65))]
    summary = agg.summarize(loading.load_runs(files))
    assert summary["top1_std"].isna().all()
    r = _row(summary, variant="rembg")
    assert r["delta"] == pytest.approx(0.05, abs=1e-12) and math.isnan(r["delta_std"])
    md = tmp_path / "t.md"
    tables.write_tables(summary, None, tmp_path / "t.csv", md)
    text = md.read_text()
    assert "| 0.600 |" in text and "| +0.050 |" in text and "±" not in text.split("## Classification")[1]
    plots.plot_variant_bars(summary, tmp_path / "bars.png")
    curves = {f"{f.parent.parent.name}/seed-0": f.parent / "history.csv" for f in files}
    plots.plot_learning_curves(curves, tmp_path / "curves.png")
    assert Image.open(tmp_path / "bars.png").size == tuple(
        round(x * plots.DPI) for x in plots.variant_bars_figsize(summary))


# ------------------------------------------------------------------------------- plots


def _png(path: Path) -> Image.Image:
    assert path.stat().st_size > 1000
    img = Image.open(path)
    img.load()
    assert img.format == "PNG"
    assert "Software" not in img.info  # no version string in metadata
    return img


def test_variant_bars_size_and_determinism(run_files, tmp_path):
    summary = agg.summarize(loading.load_runs(run_files))
    out = plots.plot_variant_bars(summary, tmp_path / "a" / "bars.png")
    # Two tasks: classification (2 configs × 2 conditions → 4.0 in min) + segmentation (4.0 in).
    img = _png(out)
    assert img.size == (round(8.0 * plots.DPI), round(3.8 * plots.DPI)) == (1200, 570)
    # Non-white pixels exist in both halves (both panels drawn).
    arr = np.asarray(img.convert("L"))
    assert (arr[:, : arr.shape[1] // 2] < 200).any() and (arr[:, arr.shape[1] // 2:] < 200).any()
    plots.plot_variant_bars(summary, tmp_path / "b.png")
    assert out.read_bytes() == (tmp_path / "b.png").read_bytes()
    # Single task and custom size/dpi; also works on the CSV read back.
    one = summary[summary["task"] == "segmentation"]
    assert _png(plots.plot_variant_bars(one, tmp_path / "c.png", dpi=50, figsize=(4, 3))).size == (200, 150)
    tables.write_tables(summary, None, tmp_path / "s.csv", tmp_path / "s.md")
    _png(plots.plot_variant_bars(pd.read_csv(tmp_path / "s.csv"), tmp_path / "d.png"))


def test_learning_curve_data_mean_over_seeds(run_files, tmp_path):
    hist = {f"{f.parent.parent.name}/{f.parent.name}": f.parent / "history.csv" for f in run_files}
    data = agg.learning_curve_data(hist)
    assert data["experiment"].nunique() == 6
    r = data[(data["experiment"] == "classification/fs14-vgg16-rembg") & (data["epoch"] == 3)].iloc[0]
    assert r["n_seeds"] == 2 and r["condition"] == "rembg (u2net, white)" and r["config"] == "vgg16"
    assert r["val_score_mean"] == pytest.approx(0.305)
    assert r["val_score_std"] == pytest.approx(statistics.stdev([0.3, 0.31]))
    assert r["train_loss_mean"] == pytest.approx(1 / 3 + 0.5)
    assert list(data["task"].unique()) == ["classification", "segmentation"]

    out = plots.plot_learning_curves(hist, tmp_path / "curves.png")
    assert _png(out).size == tuple(round(x * plots.DPI) for x in plots.learning_curves_figsize(2))
    plots.plot_learning_curves(dict(reversed(list(hist.items()))), tmp_path / "curves2.png")
    assert out.read_bytes() == (tmp_path / "curves2.png").read_bytes()


def test_learning_curves_need_the_experiment_beside_each_history(tmp_path):
    # The variant comes from metrics.json, never from words in a run label.
    d = tmp_path / "demo-rembg" / "seed-0"
    d.mkdir(parents=True)
    (d / "history.csv").write_text("epoch,train_loss,val_score\n1,1.0,0.2\n2,0.5,0.4\n")
    with pytest.raises(FileNotFoundError, match=r"history\.csv: no metrics\.json beside it"):
        agg.learning_curve_data({"demo-rembg/seed-0": d / "history.csv"})
    broken = tmp_path / "broken.csv"
    broken.write_text("epoch,lr\n1,0.1\n")
    with pytest.raises(ValueError, match=r"broken\.csv.*train_loss"):
        agg.learning_curve_data({"x/seed-0": broken})


def test_example_grid(tmp_path):
    rng = np.random.default_rng(0)
    n_img, h, w = 10, 32, 24
    images = rng.integers(0, 255, (n_img, h, w, 3), dtype=np.uint8)
    masks = rng.integers(0, 255, (n_img, h, w), dtype=np.uint8)
    comps = images // 2
    truth = (masks > 128).astype(np.uint8) * 255
    out = examples.plot_example_grid(images, masks, comps, tmp_path / "grid.png", n=4)
    fw, fh = examples.example_grid_figsize(4, 3, h, w)
    assert _png(out).size == (round(fw * examples.GRID_DPI), round(fh * examples.GRID_DPI))
    assert _png(out).size == (630, 40 + round(4 * 200 * h / w))
    out_t = examples.plot_example_grid(images, masks, comps, tmp_path / "grid_t.png", n=4, truth=truth)
    assert _png(out_t).size[0] == 830  # one more column
    # Same seed → same bytes; another seed → other examples.
    examples.plot_example_grid(images, masks, comps, tmp_path / "again.png", n=4, truth=truth)
    assert out_t.read_bytes() == (tmp_path / "again.png").read_bytes()
    examples.plot_example_grid(images, masks, comps, tmp_path / "seed1.png", n=4, truth=truth, seed=1)
    assert out_t.read_bytes() != (tmp_path / "seed1.png").read_bytes()
    # Fewer images than n: all of them; float inputs in [0, 1] accepted.
    small = examples.plot_example_grid(images[:2] / 255.0, masks[:2] / 255.0, comps[:2], tmp_path / "s.png")
    assert _png(small).size[1] == round(examples.example_grid_figsize(2, 3, h, w)[1] * examples.GRID_DPI)
    with pytest.raises(ValueError, match="masks shape"):
        examples.plot_example_grid(images, masks[:, :10], comps, tmp_path / "bad.png")


def test_markdown_from_csv_round_trip(run_files, tmp_path):
    # The Markdown can be rebuilt from the CSV alone (e.g. in a separate Snakemake rule).
    summary = agg.summarize(loading.load_runs(run_files))
    tables.write_tables(summary, None, tmp_path / "s.csv", tmp_path / "s.md")
    again = tables.summary_markdown(pd.read_csv(tmp_path / "s.csv"))
    assert again == (tmp_path / "s.md").read_text()


# ------------------------------------------------------------------------ cross-condition


def _cross_files(root: Path) -> list[Path]:
    """resnet50 trained on original / rembg, each tested on both (known top-1 per seed)."""
    # (trained on, tested on) → top1 for seeds 0, 1
    table = {
        ("original", "original"): [0.60, 0.64], ("original", "rembg"): [0.40, 0.42],
        ("rembg", "rembg"): [0.65, 0.66], ("rembg", "original"): [0.50, 0.56],
    }  # fmt: skip
    files = []
    for variant in ("original", "rembg"):
        exp = _cls_exp("resnet50", variant)
        for seed in (0, 1):
            own = {"top1": table[(variant, variant)][seed], "top5": 1.0, "best_epoch": 2}
            path = _write_run(root, exp, seed, own)
            data = json.loads(path.read_text())
            data["cross"] = [
                {"key": test, "variant": test, "sod": "u2net" if test == "rembg" else None,
                 "fill": "white" if test == "rembg" else None,
                 "metrics": {"top1": table[(variant, test)][seed], "top5": 1.0, "confusion_matrix": [[1]]}}
                for test in ([variant] + [t for t in ("original", "rembg") if t != variant])
            ]  # fmt: skip
            path.write_text(json.dumps(data))
            files.append(path)
    # A segmentation run written before cross-evaluation existed: its own condition only.
    files.append(_write_run(root, _seg_exp("original"), 0, {"miou": 0.4, "best_epoch": 1}))
    return files


def test_cross_condition_table_markdown_and_figure(tmp_path):
    files = _cross_files(tmp_path / "runs")
    cross = agg.summarize_cross(loading.load_cross(list(reversed(files))))
    cls = cross[cross["task"] == "classification"]
    assert len(cls) == 4 and set(cls["n_seeds"]) == {2}
    cell = cls[(cls["variant"] == "original") & (cls["test_variant"] == "rembg")].iloc[0]
    assert cell["top1_mean"] == pytest.approx(0.41)
    assert cell["top1_std"] == pytest.approx(statistics.stdev([0.40, 0.42]))
    assert cell["test_condition"] == "rembg (u2net, white)" and not cell["in_condition"]
    own = cls[cls["in_condition"].astype(bool)]
    assert sorted(own["top1_mean"].round(3)) == [0.62, 0.655]
    seg = cross[cross["task"] == "segmentation"]
    assert len(seg) == 1 and bool(seg["in_condition"].iloc[0]) and seg["miou_mean"].iloc[0] == pytest.approx(0.4)

    md = tables.cross_markdown(cross)
    assert "## Train on X, test on Y" in md and "top-1 on rembg (u2net, white)" in md
    assert "0.620 ± 0.028 *" in md and "0.530 ± 0.042" in md  # own condition starred, cross not

    tables.write_cross(cross, tmp_path / "cross.csv")
    again = pd.read_csv(tmp_path / "cross.csv")
    assert list(again.columns) == list(cross.columns) and len(again) == len(cross)
    out = plots.plot_cross_condition(again, tmp_path / "cross.png")
    with Image.open(out) as img:
        assert img.width > 300 and img.height > 150
    plots.plot_cross_condition(again, tmp_path / "cross2.png")
    assert (tmp_path / "cross.png").read_bytes() == (tmp_path / "cross2.png").read_bytes()  # deterministic


def test_cross_condition_in_summary_markdown(tmp_path):
    files = _cross_files(tmp_path / "runs")
    summary = agg.summarize(loading.load_runs(files))
    cross = agg.summarize_cross(loading.load_cross(files))
    tables.write_tables(summary, None, tmp_path / "s.csv", tmp_path / "s.md", cross)
    text = (tmp_path / "s.md").read_text()
    assert text.index("## Classification") < text.index("## Train on X, test on Y")


def test_load_cross_rejects_malformed_entries(tmp_path):
    path = _write_run(tmp_path, _cls_exp("vgg16", "original"), 0, {"top1": 0.5})
    data = json.loads(path.read_text())
    data["cross"] = [{"metrics": {"top1": 0.5}}]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="'cross' entry needs 'variant'"):
        loading.load_cross([path])


# ------------------------------------------------------------- statistics and run health

from fashion_rembg.reporting import health as health_mod  # noqa: E402
from fashion_rembg.reporting import stats as stats_mod  # noqa: E402
from fashion_rembg.stages import aggregate_to_tables  # noqa: E402

N_TEST = 40
LABELS = np.arange(N_TEST) % 2


def _write_predictions(metrics_file: Path, correct: np.ndarray, key: str, *, collapse: bool = False) -> None:
    """predictions.npz of a 2-class classifier that is right exactly where ``correct`` says."""
    predicted = np.where(correct.astype(bool), LABELS, 1 - LABELS)
    if collapse:
        predicted = np.zeros(N_TEST, dtype=int)
    logits = np.eye(2, dtype=np.float32)[predicted]
    np.savez(
        metrics_file.parent / "predictions.npz",
        ids=np.array([f"img{i:03d}" for i in range(N_TEST)]),
        labels=LABELS,
        conditions=np.array([key]),
        **{f"logits_{key}": logits},
    )


def _evidence_runs(root: Path, effect=0.3, collapse_rembg_seed=None) -> tuple[list[Path], dict]:
    """resnet50 original vs rembg on the same 40 test images, seeds 0/1, with per-image scores."""
    rng = np.random.default_rng(0)
    files, correct = [], {}
    for seed in (0, 1):
        base = rng.random(N_TEST) < 0.55
        better = base | (rng.random(N_TEST) < effect)
        for variant, c in (("original", base), ("rembg", better)):
            collapse = variant == "rembg" and seed == collapse_rembg_seed
            if collapse:
                c = LABELS == 0
            correct[(variant, seed)] = c.astype(float)
            f = _write_run(root, _cls_exp("resnet50", variant), seed, {"top1": float(c.mean())}, epochs=8)
            _write_predictions(f, c, "original" if variant == "original" else "rembg-u2net-white", collapse=collapse)
            files.append(f)
    return files, correct


def test_summary_gets_ci_p_values_holm_and_health_from_per_image_scores(tmp_path):
    files, correct = _evidence_runs(tmp_path / "runs")
    evidence = loading.load_evidence(files)
    summary = agg.summarize(loading.load_runs(files), evidence=evidence)
    for col in ("dataset", "delta", "ci_low", "ci_high", "p_value", "p_holm", "health"):
        assert col in summary.columns
    r = _row(summary, variant="rembg")
    want = stats_mod.paired_delta(
        [correct[("original", s)] for s in (0, 1)], [correct[("rembg", s)] for s in (0, 1)], LABELS
    )
    assert r["delta"] == pytest.approx(want.delta, abs=1e-9)
    assert (r["ci_low"], r["ci_high"], r["p_value"]) == pytest.approx((want.ci_low, want.ci_high, want.p_value))
    assert r["ci_low"] < r["delta"] < r["ci_high"] and r["ci_low"] > 0 and r["p_value"] < 0.01
    assert r["p_holm"] == pytest.approx(r["p_value"])  # one comparison in the table
    assert set(summary["health"]) == {"ok"}
    orig = _row(summary, variant="original")
    assert math.isnan(orig["ci_low"]) and math.isnan(orig["p_value"])
    # Deterministic and independent of file order.
    files.reverse()
    again = agg.summarize(loading.load_runs(files), evidence=loading.load_evidence(files))
    pd.testing.assert_frame_equal(summary, again)


def test_holm_runs_across_the_comparisons_of_a_table(tmp_path):
    files, _ = _evidence_runs(tmp_path / "runs")
    # A second configuration (lr) with no effect: two p-values in the classification table.
    rng = np.random.default_rng(5)
    for seed in (0, 1):
        c = rng.random(N_TEST) < 0.6
        for variant in ("original", "rembg"):
            exp = _cls_exp("resnet50", variant) | {"id": f"lr-{variant}", "lr": 0.01}
            f = _write_run(tmp_path / "runs", exp, seed, {"top1": float(c.mean())}, epochs=8)
            _write_predictions(f, c, variant)
            files.append(f)
    summary = agg.summarize(loading.load_runs(files), evidence=loading.load_evidence(files))
    deltas = summary[summary["variant"] == "rembg"]
    np.testing.assert_allclose(deltas["p_holm"], stats_mod.holm(deltas["p_value"].to_numpy()))
    same = _row(summary, id="lr-rembg")
    assert same["p_value"] == 1.0 and same["ci_low"] == same["ci_high"] == 0.0


def test_collapsed_run_is_flagged_in_tables_report_and_log(tmp_path, caplog):
    files, _ = _evidence_runs(tmp_path / "runs", collapse_rembg_seed=1)
    out = tmp_path / "tables"
    with caplog.at_level("WARNING"):
        aggregate_to_tables(files, [], out / "summary.csv", out / "summary.md", tex_path=out / "summary.tex")
    assert "RUN HEALTH classification/fs14-resnet50-rembg seed 1: collapsed" in caplog.text
    back = pd.read_csv(out / "summary.csv")
    rembg = back[back["variant"] == "rembg"].iloc[0]
    assert rembg["health"] == "collapsed" and "seed 1: collapsed: one predicted class" in rembg["health_detail"]
    assert back[back["variant"] == "original"].iloc[0]["health"] == "ok"
    md = (out / "summary.md").read_text()
    assert "⚠ Run health: 1 of 2 rows" in md and "⚠ collapsed" in md
    assert "Δ top-1 [95 % CI]" in md and "p (Holm)" in md and "permutation test" in md
    tex = (out / "summary.tex").read_text()
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex and "collapsed" in tex
    assert r"$p_{\mathrm{Holm}}$" in tex and "rembg (u2net, white)" in tex
    # The train-on-X/test-on-Y table marks the flagged models too.
    cross = agg.summarize_cross(loading.load_cross(files), loading.load_evidence(files))
    assert list(cross.sort_values("variant")["health"]) == ["ok", "collapsed"]
    assert "rembg (u2net, white) ⚠ collapsed" in tables.cross_markdown(cross)
    # The same rows: one tabular line per summary row.
    assert tex.count(r"\\" + "\n") == 1 + 2


def test_health_checks_on_histories():
    def hist(train_loss, val_score, train_score, val_loss=None):
        n = len(train_loss)
        return pd.DataFrame(
            {
                "epoch": range(1, n + 1),
                "train_loss": train_loss,
                "train_score": train_score,
                "val_loss": val_loss or [1.0] * n,
                "val_score": val_score,
                "lr": [0.001] * n,
            }
        )

    good = hist([2.0, 1.0, 0.5], [0.3, 0.5, 0.7], [0.4, 0.7, 0.9])
    assert health_mod.assess_run("classification", good, 14, 10) == []
    assert health_mod.assess_run("classification", good, 14, 1)[0].startswith("collapsed: one predicted class")
    at_chance = hist([2.0, 1.9, 1.9], [0.07, 0.08, 0.071], [0.7, 0.8, 0.9])
    assert health_mod.assess_run("classification", at_chance, 14, 5)[0].startswith("collapsed: val accuracy")
    exploding = hist([2.0, 30.0, 1.0], [0.3, 0.5, 0.7], [0.4, 0.7, 0.9])
    assert health_mod.assess_run("classification", exploding, 14, 5) == [
        "diverged: train loss 30 > 5 × first epoch's 2"
    ]
    nan_loss = hist([2.0, 1.0, 0.5], [0.3, 0.5, 0.7], [0.4, 0.7, 0.9], val_loss=[1.0, float("nan"), 1.0])
    assert health_mod.assess_run("classification", nan_loss, 14, 5) == ["diverged: non-finite loss"]
    underfit = hist([2.0, 1.5, 1.2], [0.3, 0.4, 0.45], [0.2, 0.22, 0.26])
    assert health_mod.assess_run("classification", underfit, 14, 5) == ["underfit: final train top-1 0.26 < 0.60"]
    # Segmentation: no chance level for mIoU; the train mIoU threshold applies.
    assert health_mod.assess_run("segmentation", underfit, 3, 3) == ["underfit: final train mIoU 0.26 < 0.30"]
    # Instance: a run whose confident detections match nothing, or whose val segm AP stays at 0, collapsed.
    learning = hist([2.5, 1.8, 1.5], [0.02, 0.08, 0.12], [float("nan")] * 3, val_loss=[float("nan")] * 3)
    assert health_mod.assess_run("instance", learning, 28, None, matched_images=40) == []
    assert health_mod.assess_run("instance", learning, 28, None, matched_images=0) == [
        "collapsed: no detection with score ≥ 0.5 matches an object on any test image"]
    stuck = hist([2.5, 1.8, 1.7], [0.0, 0.004, 0.009], [float("nan")] * 3, val_loss=[float("nan")] * 3)
    assert health_mod.assess_run("instance", stuck, 28, None, matched_images=3) == [
        "collapsed: val segm AP ≤ 0.01 in all 3 epochs"]
    assert health_mod.combine_flags([["underfit: x"], ["collapsed: y", "underfit: z"], []]) == "collapsed;underfit"
    assert health_mod.combine_flags([[], []]) == "ok"


def test_standin_imagenet_weights_are_labelled(tmp_path):
    files = []
    for variant in ("original", "rembg"):
        exp = _cls_exp("resnet50", variant) | {"init": "imagenet"}
        f = _write_run(tmp_path / "runs", exp, 0, {"top1": 0.5})
        doc = json.loads(f.read_text())
        doc["pretrained"] = {"arch": "resnet50", "file": "resnet50-11ad3fa6.pth", "published": False}
        f.write_text(json.dumps(doc))
        files.append(f)
    real = _cls_exp("resnet50", "original") | {"init": "imagenet", "id": "real", "lr": 0.1}
    f = _write_run(tmp_path / "runs", real, 0, {"top1": 0.5})
    doc = json.loads(f.read_text())
    doc["pretrained"] = {"arch": "resnet50", "file": "resnet50-11ad3fa6.pth", "published": True}
    f.write_text(json.dumps(doc))
    runs = loading.load_runs(files + [f])
    assert sorted(runs["init"]) == ["imagenet", "imagenet (stand-in)", "imagenet (stand-in)"]
    summary = agg.summarize(runs)
    assert _row(summary, variant="rembg")["config_label"] == "resnet50 · imagenet (stand-in)"
    assert _row(summary, id="real")["config_label"] == "resnet50 (init=imagenet, lr=0.1)"


def test_segmentation_delta_gets_a_ci_from_per_image_confusions(tmp_path):
    rng = np.random.default_rng(1)
    files = []
    for seed in (0, 1):
        conf = rng.integers(0, 30, (20, 3, 3))
        for variant, c in (("original", conf), ("rembg", conf + 20 * np.eye(3, dtype=int))):
            miou = float(stats_mod.miou_statistic(c.sum(0)[None], np.ones(1))[0])
            f = _write_run(tmp_path / "runs", _seg_exp(variant), seed, {"miou": miou}, epochs=8)
            key = variant if variant == "original" else "rembg-u2net-white"
            np.savez(
                f.parent / "predictions.npz",
                ids=np.array([f"m{i}" for i in range(20)]),
                conditions=np.array([key]),
                **{f"confusion_{key}": c.astype(np.int32)},
            )
            files.append(f)
    summary = agg.summarize(loading.load_runs(files), evidence=loading.load_evidence(files), n_boot=300, n_perm=199)
    r = _row(summary, variant="rembg")
    assert r["ci_low"] <= r["delta"] <= r["ci_high"] and r["ci_low"] > 0 and r["p_value"] < 0.05
    assert r["health"] == "ok"


def test_variant_bars_with_ci_panel(tmp_path):
    files, _ = _evidence_runs(tmp_path / "runs")
    summary = agg.summarize(loading.load_runs(files), evidence=loading.load_evidence(files))
    img = _png(plots.plot_variant_bars(summary, tmp_path / "bars.png"))
    assert img.size == (round(4.0 * plots.DPI), round(6.0 * plots.DPI))  # bars + the Δ-with-CI row
    plots.plot_variant_bars(summary, tmp_path / "again.png")
    assert (tmp_path / "bars.png").read_bytes() == (tmp_path / "again.png").read_bytes()
    # A percentile CI need not contain Δ (nonlinear metric, few images): still drawn.
    summary.loc[summary["variant"] == "rembg", ["ci_low", "ci_high"]] = [0.2, 0.3]
    assert _png(plots.plot_variant_bars(summary, tmp_path / "outside.png")).size == img.size
