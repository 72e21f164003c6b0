"""Hostile and careless inputs, table-driven: input kind → the quarantine reason or the error text.

Raw inputs are hashed before and after every case: nothing here may modify raw data. Paths read
from data files must never lead outside their dataset folder; config names that become folder
names must be one safe path component. (The planted-checkpoint cases live in test_resume.py.)
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import struct
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image
from snakemake.utils import validate

from fashion_rembg.config import expand_task
from fashion_rembg.datasets.fashionpedia import prepare_fashionpedia
from fashion_rembg.datasets.fashionstyle14 import prepare_fashionstyle14
from fashion_rembg.datasets.modanet import CATEGORIES as MODANET_CATEGORIES
from fashion_rembg.datasets.modanet import IMAGES_MARKER, extract_images, prepare_modanet
from fashion_rembg.datasets.store import to_rgb
from fashion_rembg.errors import ConfigError, DataError
from fashion_rembg.saliency.registry import validate_saliency

from raw_fixtures import coco_json, jpeg_bytes, make_fashionpedia, make_fs14

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


def digest(*roots: Path) -> dict[str, str]:
    """sha256 of every file under `roots`, and the target of every symbolic link."""
    out = {}
    for root in roots:
        for path in sorted(Path(root).rglob("*")):
            if path.is_symlink():
                out[str(path)] = "link:" + os.readlink(path)
            elif path.is_file():
                out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture
def secret(tmp_path) -> Path:
    """A readable image outside every dataset folder: it must never reach a store."""
    path = tmp_path / "elsewhere" / "secret.jpg"
    path.parent.mkdir()
    path.write_bytes(jpeg_bytes((255, 0, 255), (400, 600)))
    return path


def reasons_of(out: Path) -> dict[str, str]:
    quarantine = pd.read_csv(out / "quarantine.tsv", sep="\t", keep_default_na=False)
    return dict(zip(quarantine["source"], quarantine["reason"]))


# ---------------------------------------------------------------------------------------- ModaNet
GOOD_POLYGON = [100, 100, 300, 100, 300, 300, 100, 300]
# kind → (file_name, category_id, polygon) of one image; the expected quarantine reason
MODANET_CASES = {
    "file_name with ..": ("../elsewhere/secret.jpg", 6, GOOD_POLYGON, "'..' in member path"),
    "absolute file_name": ("{secret}", 6, GOOD_POLYGON, "absolute path"),
    "symlink out of the folder": ("link.jpg", 6, GOOD_POLYGON, "leads outside"),
    "empty file_name": ("", 6, GOOD_POLYGON, "is empty or not text"),
    "non-numeric coordinates": ("x1.jpg", 6, [100, "a", 300, 100, 300, 300, 100, 300], "non-numeric coordinates"),
    "NaN coordinates": ("x2.jpg", 6, [100, math.nan, 300, 100, 300, 300, 100, 300], "NaN or infinite"),
    "infinite coordinates": ("x3.jpg", 6, [100, math.inf, 300, 100, 300, 300, 100, 300], "NaN or infinite"),
    "absurdly large coordinates": ("x4.jpg", 6, [100, 100, 1e12, 100, 1e12, 1e12, 100, 300], "far outside"),
    "category id outside the categories": ("x5.jpg", 14, GOOD_POLYGON, "unknown category_id 14"),
    "category id of another type": ("x6.jpg", "6", GOOD_POLYGON, "unknown category_id '6'"),
    "compressed RLE too short": ("x7.jpg", 6, {"size": [600, 400], "counts": "0"}, "compressed RLE is malformed"),
    "compressed RLE garbage": ("x8.jpg", 6, {"size": [600, 400], "counts": "~~~~"}, "compressed RLE is malformed"),
    "RLE with negative runs": ("x9.jpg", 6, {"size": [600, 400], "counts": [-10, 240010]}, "uncompressed RLE covers"),
}


def write_modanet_folder(root: Path, cases: dict, secret: Path, good: int = 12) -> tuple[Path, Path]:
    """modanet JSON + an extracted image folder (the layout extract_modanet_images leaves)."""
    images_dir = root / "images"
    images_dir.mkdir(parents=True)
    (images_dir / IMAGES_MARKER).write_text(json.dumps({"lmdb": "photos.lmdb"}))
    (images_dir / "link.jpg").symlink_to(secret)
    images, annotations = [], []
    rows = [(f"{i:07d}.jpg", 6, GOOD_POLYGON) for i in range(1, good + 1)]
    rows += [(name.format(secret=secret), cat, poly) for name, cat, poly, _ in cases.values()]
    for image_id, (name, cat, poly) in enumerate(rows, start=1):
        images.append({"id": image_id, "file_name": name, "width": 400, "height": 600})
        annotations.append({"id": 100 + image_id, "image_id": image_id, "category_id": cat, "area": 10,
                            "segmentation": poly if isinstance(poly, dict) else [poly]})
        if name and "/" not in name and name != "link.jpg":
            (images_dir / name).write_bytes(jpeg_bytes((image_id * 10 % 255, 80, 160)))
    categories = [{"id": i, "name": n, "supercategory": "fashion"} for i, n in enumerate(MODANET_CATEGORIES, 1)]
    ann_path = root / "modanet2018_instances_train.json"
    ann_path.write_text(json.dumps(coco_json(images, annotations, categories)))  # NaN/Infinity as Python writes them
    return ann_path, images_dir


def test_modanet_bad_rows_are_quarantined_with_their_reason(tmp_path, secret):
    ann_path, images_dir = write_modanet_folder(tmp_path / "raw", MODANET_CASES, secret)
    before = digest(tmp_path / "raw", secret.parent)
    out = tmp_path / "out"
    summary = prepare_modanet(ann_path, images_dir, out, (48, 32), 0.2, 0.2, 0)
    reasons = reasons_of(out)
    assert summary["images"] == 12 and summary["quarantined"] == len(MODANET_CASES)
    for kind, (name, _, _, expected) in MODANET_CASES.items():
        source = name.format(secret=secret)
        assert expected in reasons[source], f"{kind}: {reasons[source]!r}"
    for kind in ("non-numeric coordinates", "NaN coordinates", "category id outside the categories"):
        assert "annotation 1" in reasons[MODANET_CASES[kind][0]], kind  # names the annotation id
    images = np.load(out / "images.npy")
    assert not (np.abs(images.astype(int) - [255, 0, 255]).max(axis=-1) < 40).any(), "the secret image was read"
    assert digest(tmp_path / "raw", secret.parent) == before, "raw data modified"


def test_modanet_extraction_never_writes_outside_its_folder(tmp_path, secret):
    import lmdb

    names = ["../../escaped.jpg", "/tmp/escaped-abs.jpg", "..", "", "0000005.jpg"]
    images = [{"id": i, "file_name": n, "width": 400, "height": 600} for i, n in enumerate(names, start=1)]
    annotations = [{"id": i, "image_id": i, "category_id": 6, "area": 1, "segmentation": [GOOD_POLYGON]}
                   for i in range(1, len(names) + 1)]
    categories = [{"id": i, "name": n, "supercategory": "fashion"} for i, n in enumerate(MODANET_CATEGORIES, 1)]
    raw = tmp_path / "raw"
    raw.mkdir()
    ann_path = raw / "train.json"
    ann_path.write_text(json.dumps(coco_json(images, annotations, categories)))
    env = lmdb.open(str(raw / "photos.lmdb"), map_size=2**24)
    with env.begin(write=True) as txn:
        for i in range(1, len(names) + 1):
            txn.put(str(i).encode(), jpeg_bytes((1, 2, 3), (40, 60)))
    env.close()
    before = digest(raw)
    summary = extract_images(ann_path, raw / "photos.lmdb", tmp_path / "work" / "images")
    assert summary["images"] == 1 and sorted(summary["refused_file_names"]) == [1, 2, 3, 4]
    assert "'..'" in summary["refused_file_names"][1] and "absolute" in summary["refused_file_names"][2]
    assert not (tmp_path / "escaped.jpg").exists() and not Path("/tmp/escaped-abs.jpg").exists()
    assert sorted(p.name for p in (tmp_path / "work").rglob("*")) == ["0000005.jpg", IMAGES_MARKER, "images"]
    assert digest(raw) == before


# ---------------------------------------------------------------------------------- Fashionpedia
def _declare_member_size(zip_path: Path, member: str, size: int) -> None:
    """Rewrite the central-directory entry of `member` to declare `size` uncompressed bytes."""
    data = bytearray(zip_path.read_bytes())
    pos = data.find(b"PK\x01\x02")
    while pos >= 0:
        name_len = struct.unpack_from("<H", data, pos + 28)[0]
        if data[pos + 46:pos + 46 + name_len].decode() == member:
            struct.pack_into("<I", data, pos + 24, size)
        pos = data.find(b"PK\x01\x02", pos + 4)
    zip_path.write_bytes(bytes(data))


def test_fashionpedia_hostile_file_names_and_a_member_declaring_gigabytes(tmp_path, secret):
    paths = make_fashionpedia(tmp_path / "raw")
    train = json.loads(Path(paths["train_annotations"]).read_text())
    train["images"][0]["file_name"] = "../../elsewhere/secret.jpg"
    train["images"][1]["file_name"] = str(secret)
    Path(paths["train_annotations"]).write_text(json.dumps(train))
    member = f"train/{train['images'][2]['file_name']}"
    _declare_member_size(Path(paths["train_images"]), member, 1536 << 20)  # 1.5 GiB declared, a few kB stored
    with zipfile.ZipFile(paths["train_images"]) as zf:
        assert zf.getinfo(member).file_size == 1536 << 20
    before = digest(tmp_path / "raw", secret.parent)
    empty = r"Fashionpedia: the (train|val) split is empty after quarantine \(\d+ of its rows quarantined"
    with pytest.raises(DataError, match=empty):
        prepare_fashionpedia(paths, tmp_path / "out", (64, 64), val_fraction=0.4, seed=0)
    reasons = reasons_of(tmp_path / "out")
    assert "'..' in member path" in reasons["train/../../elsewhere/secret.jpg"]
    assert "absolute path" in reasons[f"train/{secret}"]
    assert f"zip member {member} is 1,610,612,736 bytes" in reasons[member]
    assert digest(tmp_path / "raw", secret.parent) == before


def test_fashionpedia_folder_symlink_out_of_root_is_quarantined(tmp_path, secret):
    paths = make_fashionpedia(tmp_path / "raw", as_folders=True)
    train = json.loads(Path(paths["train_annotations"]).read_text())
    link = Path(paths["train_images"]) / "train" / train["images"][0]["file_name"]
    link.unlink()
    link.symlink_to(secret)
    before = digest(tmp_path / "raw", secret.parent)
    prepare_fashionpedia(paths, tmp_path / "out", (64, 64), val_fraction=0.34, seed=0)
    assert "leads outside" in reasons_of(tmp_path / "out")[f"train/{link.name}"]
    assert digest(tmp_path / "raw", secret.parent) == before


# -------------------------------------------------------------------------------- FashionStyle14
def _fs14_symlink(root: Path, secret: Path) -> str:
    (root / "dataset" / "rock" / "evil.jpg").symlink_to(secret)
    return "dataset/rock/evil.jpg"


FS14_ROW_CASES = {
    "symlink out of the root": (_fs14_symlink, "leads outside"),
    "row with ..": (lambda root, secret: "dataset/rock/../../../elsewhere/secret.jpg", "not of the form"),
    "absolute row": (lambda root, secret: str(secret), "not of the form"),
}


def test_fashionstyle14_rows_leading_outside_are_quarantined(tmp_path, secret):
    root = make_fs14(tmp_path / "FashionStyle14_v1", bad_cases=False)
    rows = {kind: make(root, secret) for kind, (make, _) in FS14_ROW_CASES.items()}
    with open(root / "train.csv", "a") as fh:
        fh.write("\n".join(rows.values()) + "\n")
    before = digest(root, secret.parent)
    prepare_fashionstyle14(root, tmp_path / "out", (24, 16))
    reasons = reasons_of(tmp_path / "out")
    for kind, (_, expected) in FS14_ROW_CASES.items():
        assert expected in reasons[rows[kind]], kind
    assert digest(root, secret.parent) == before


FS14_SPLIT_CASES = {
    "every val row quarantined": (
        lambda root: (root / "val.csv").write_text("dataset/rock/nope.jpg\nnot a path\n"),
        r"the val split is empty after quarantine \(2 of its rows quarantined",
    ),
    "empty test list": (
        lambda root: (root / "test.csv").write_text(""),
        r"the test split is empty after quarantine \(0 of its rows",
    ),
    "UTF-16 split list": (
        lambda root: (root / "val.csv").write_bytes((root / "val.csv").read_text().encode("utf-16")),
        r"val.csv is neither UTF-8 nor Shift-JIS|the val split is empty after quarantine",
    ),
}


@pytest.mark.parametrize("kind", FS14_SPLIT_CASES)
def test_fashionstyle14_empty_split_stops_prepare(tmp_path, kind):
    root = make_fs14(tmp_path / "FashionStyle14_v1", bad_cases=False)
    damage, expected = FS14_SPLIT_CASES[kind]
    damage(root)
    before = digest(root)
    with pytest.raises(DataError, match=expected):
        prepare_fashionstyle14(root, tmp_path / "out", (24, 16))
    assert digest(root) == before


# ---------------------------------------------------------------------------------- pixel formats
def _image(mode: str, value, size=(8, 6), **info) -> Image.Image:
    img = Image.new(mode, size, value)
    img.info.update(info)
    return img


def _sixteen_bit(mode: str, value: int) -> Image.Image:
    dtype = {"I;16": "<u2", "I;16B": ">u2"}[mode]
    return Image.frombuffer(mode, (8, 6), np.full((6, 8), value, dtype=dtype).tobytes(), "raw", mode, 0, 1)


# mode → (image, the RGB every pixel must get): absolute intensities, never rescaled per image
PIXEL_CASES = {
    "RGB": (lambda: _image("RGB", (200, 100, 50)), (200, 100, 50)),
    "L": (lambda: _image("L", 100), (100, 100, 100)),
    "1": (lambda: _image("1", 1), (255, 255, 255)),
    "P": (lambda: _image("RGB", (200, 100, 50)).convert("P", palette=Image.Palette.ADAPTIVE), (200, 100, 50)),
    "P+transparency": (lambda: _image("P", 0, transparency=0), (255, 255, 255)),
    "RGBA opaque": (lambda: _image("RGBA", (200, 100, 50, 255)), (200, 100, 50)),
    "RGBA transparent": (lambda: _image("RGBA", (200, 100, 50, 0)), (255, 255, 255)),
    "LA": (lambda: _image("LA", (100, 255)), (100, 100, 100)),
    "CMYK": (lambda: _image("CMYK", (0, 50, 100, 0)), (255, 205, 155)),
    "YCbCr": (lambda: _image("YCbCr", (100, 128, 128)), (100, 100, 100)),
    "I;16 mid-grey": (lambda: _sixteen_bit("I;16", 128 * 257), (128, 128, 128)),
    "I;16 dark frame": (lambda: _sixteen_bit("I;16", 1000), (4, 4, 4)),  # not stretched to white
    "I;16B": (lambda: _sixteen_bit("I;16B", 200 * 257), (200, 200, 200)),
    "I (16-bit PNG as int32)": (lambda: _image("I", 50 * 257), (50, 50, 50)),
}


@pytest.mark.parametrize("kind", PIXEL_CASES)
def test_pixel_format_conversions_keep_absolute_intensities(kind):
    make, expected = PIXEL_CASES[kind]
    rgb, _ = to_rgb(make())
    arr = np.asarray(rgb)
    assert rgb.mode == "RGB" and np.abs(arr.astype(int) - expected).max() <= 2, (kind, arr[0, 0])


@pytest.mark.parametrize(
    "img, expected",
    [
        (_image("F", 0.5), "32-bit float image"),
        (_image("I", 70000), "outside the 16-bit range"),
    ],
    ids=["float", "int32 beyond 16 bits"],
)
def test_pixel_formats_without_a_known_scale_are_refused(img, expected):
    with pytest.raises(ValueError, match=expected):
        to_rgb(img)


def test_sixteen_bit_png_round_trip_keeps_its_level(tmp_path):
    from fashion_rembg.datasets.imaging import store_row

    path = tmp_path / "dark.png"
    Image.fromarray(np.full((12, 8), 1000, dtype=np.uint16)).save(path)
    row, note = store_row(path, (6, 4))
    assert "16-bit" in note and row.max() <= 4  # 1000/65535 of full scale, not per-image white


# ------------------------------------------------------------------------------------ config names
def load_config() -> dict:
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    validate(config, str(SCHEMA))
    return config


BAD_NAMES = ["..", ".", "a/b", "", ".hidden", "../etc", "x y", "-x"]
# where the name goes → (how to put it into a config, the check, the key the message names)
NAME_CASES = {
    "mask set": (
        lambda c, n: c["saliency"]["mask_sets"].update({n: {"model": "u2net"}}),
        "saliency",
        "saliency.mask_sets key",
    ),
    "custom model": (
        lambda c, n: c["saliency"]["custom_models"].update({n: {"file": "x.onnx"}}),
        "saliency",
        "saliency.custom_models key",
    ),
    "default mask set": (lambda c, n: c["saliency"].update(model=n), "saliency", "mask set name"),
    "sod axis": (
        lambda c, n: c["classification"]["grid"].update(variant="rembg", sod=n),
        "classification",
        "classification.grid.sod",
    ),
}


@pytest.mark.parametrize("name", BAD_NAMES)
@pytest.mark.parametrize("where", NAME_CASES)
def test_names_that_become_folders_are_refused_at_start_up(where, name):
    put, check, key = NAME_CASES[where]
    config = load_config()
    config["saliency"].setdefault("mask_sets", {})
    config["saliency"].setdefault("custom_models", {})
    put(config, name)
    with pytest.raises(ConfigError, match=f"{key}.*not a usable name"):
        validate_saliency(config) if check == "saliency" else expand_task(config, check)


@pytest.mark.parametrize("section", ["mask_sets", "custom_models"])
def test_schema_refuses_unsafe_names_too(section):
    config = load_config()
    config["saliency"][section] = {"..": {"model": "u2net"} if section == "mask_sets" else {"file": "x.onnx"}}
    with pytest.raises(Exception, match=r"does not match"):
        validate(config, str(SCHEMA))


# ------------------------------------------------------------------------ architectures, encoders
ARCH_CASES = {
    "classification arch": ("classification", {"arch": "resnet1B"}, "unknown classifier architecture 'resnet1B'"),
    "segmentation encoder": ("segmentation", {"encoder": "resnet_18"}, "unknown segmentation encoder 'resnet_18'"),
    "segmentation arch": ("segmentation", {"arch": "unet3"}, "'unet3' is not one of"),
}


@pytest.mark.parametrize("kind", ARCH_CASES)
def test_unknown_architectures_fail_at_start_up(kind):
    task, grid, expected = ARCH_CASES[kind]
    config = load_config()
    config[task]["grid"].update(grid)
    with pytest.raises(ConfigError, match=expected):
        expand_task(copy.deepcopy(config), task)


def test_static_name_lists_match_the_installed_libraries():
    import segmentation_models_pytorch as smp
    import torchvision

    from fashion_rembg.models.names import CLASSIFIER_ARCHS, SEGMENTATION_ENCODERS

    assert set(CLASSIFIER_ARCHS) == set(torchvision.models.list_models(module=torchvision.models)) | {"shallow_cnn"}
    assert set(SEGMENTATION_ENCODERS) == set(smp.encoders.get_encoder_names())


def test_dry_run_fails_on_an_unknown_architecture(tmp_path):
    from workflow_helpers import snakemake, tiny_config

    config = tiny_config()
    config["classification"]["grid"]["arch"] = "resnet1B"
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "-n", check=False)
    assert result.returncode != 0
    assert "classification.grid.arch: unknown classifier architecture 'resnet1B'" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


# --------------------------------------------------------------------- checksums before any read
def test_modanet_image_extraction_checks_the_pinned_annotation_hash_first(tmp_path, monkeypatch):
    from fashion_rembg.datasets import modanet
    from fashion_rembg.datasets.sources import extract_modanet_images

    from raw_fixtures import make_modanet

    ann_path, lmdb_dir = make_modanet(tmp_path / "raw")
    read = []
    monkeypatch.setattr(modanet, "load_annotations", lambda path: read.append(path))  # must not be reached
    config = {
        "datasets": {"modanet": {"annotations": {"path": str(ann_path), "sha256": "0" * 64}}},
        "downloads": {"ledger": str(tmp_path / "ledger.tsv")},
    }
    before = digest(tmp_path / "raw")
    with pytest.raises(DataError, match="sha256"):
        extract_modanet_images(config, str(ann_path), str(lmdb_dir / "data.mdb"), str(tmp_path / "images" / "x.json"))
    assert read == [] and not (tmp_path / "images").exists()
    assert digest(tmp_path / "raw") == before


# ------------------------------------------------------------------ disk full, read-only results
WRITE_FAULTS = {
    "disk full": (28, r"disk full while writing .*about [\d,]+ bytes needed"),  # ENOSPC
    "read-only results": (30, r"cannot write .*read-only"),  # EROFS
}


@pytest.mark.parametrize("kind", WRITE_FAULTS)
def test_store_and_checkpoint_writes_explain_disk_faults(tmp_path, monkeypatch, kind):
    import builtins

    import torch

    from fashion_rembg.atomic import save_torch
    from fashion_rembg.errors import PipelineError

    code, expected = WRITE_FAULTS[kind]
    root = make_fs14(tmp_path / "FashionStyle14_v1", bad_cases=False)
    real_open = builtins.open

    def failing_open(file, mode="r", *args, **kwargs):
        if "w" in mode and str(tmp_path / "out") in str(file):
            raise OSError(code, os.strerror(code), str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", failing_open)
    with pytest.raises(PipelineError, match=expected):
        prepare_fashionstyle14(root, tmp_path / "out", (24, 16))
    with pytest.raises(PipelineError, match=expected) as caught:
        save_torch(tmp_path / "out" / "ckpt" / "last.pt", {"w": torch.zeros(3)})
    assert str(tmp_path / "out" / "ckpt" / "last.pt") in str(caught.value)


# ------------------------------------------------------------------------------ quarantine counts
def test_quarantine_count_is_printed_and_tabled(tmp_path, capfd):
    from fashion_rembg.reporting.quarantine import write_quarantine_tables

    root = make_fs14(tmp_path / "FashionStyle14_v1")  # with its bad cases: 5 rows quarantined
    out = tmp_path / "data" / "fashionstyle14"
    summary = prepare_fashionstyle14(root, out, (24, 16))
    printed = capfd.readouterr().err
    assert f"{out}: {summary['images']} images kept, {summary['quarantined']} quarantined" in printed
    rows = write_quarantine_tables({"fashionstyle14": out}, tmp_path / "q.csv", tmp_path / "q.md")
    assert rows[0]["kept"] == summary["images"] and rows[0]["quarantined"] == summary["quarantined"] == 5
    md = (tmp_path / "q.md").read_text()
    assert f"| fashionstyle14 | {summary['images']} | 5 |" in md and "unknown style" in md
    assert pd.read_csv(tmp_path / "q.csv")["quarantined"].tolist() == [5]


# ------------------------------------------------------------------ raw data changed after prepare
def test_changed_raw_images_re_prepare_the_dataset(tmp_path):
    from workflow_helpers import planned_jobs, snakemake

    root = make_fs14(tmp_path / "raw" / "FashionStyle14_v1", bad_cases=False)
    config = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    config["datasets"]["fashionstyle14"]["root"] = str(root)
    config["datasets"]["fashionstyle14"]["store_size"] = [32, 32]
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    target = "results/data/fashionstyle14/manifest.tsv"
    snakemake(tmp_path, target)
    stored = (tmp_path / "results/data/fashionstyle14/images.npy").read_bytes()
    assert "Nothing to be done" in snakemake(tmp_path, "-n", target).stdout  # unchanged: no rerun

    image = sorted((root / "dataset" / "rock").iterdir())[0]
    Image.new("RGB", (40, 60), (1, 2, 3)).save(image, format="JPEG")  # same name, new pixels
    rerun = snakemake(tmp_path, target)  # its job table: what the change made it run
    assert planned_jobs(rerun.stdout + rerun.stderr) == {"prepare_fashionstyle14": 1}, rerun.stderr
    assert (tmp_path / "results/data/fashionstyle14/images.npy").read_bytes() != stored
    assert "Nothing to be done" in snakemake(tmp_path, "-n", target).stdout


IMAGE_ENTRY_CASES = {
    "id not an integer": ({"id": "seven", "width": 400, "height": 600}, "id, width and height must be integers"),
    "width not a number": ({"id": 70, "width": "wide", "height": 600}, "id, width and height must be integers"),
    "absurd size": ({"id": 71, "width": 10**9, "height": 600}, "is not a plausible photo size"),
    "zero size": ({"id": 72, "width": 0, "height": 600}, "is not a plausible photo size"),
    "repeated id": ({"id": 1, "width": 400, "height": 600}, "image 1: id listed twice"),
}


def test_coco_image_entries_with_bad_ids_or_sizes_are_quarantined(tmp_path, secret):
    ann_path, images_dir = write_modanet_folder(tmp_path / "raw", {}, secret)
    doc = json.loads(ann_path.read_text())
    for n, (entry, _) in enumerate(IMAGE_ENTRY_CASES.values()):
        doc["images"].append({**entry, "file_name": f"bad{n}.jpg"})
        doc["annotations"].append(
            {
                "id": 900 + n,
                "image_id": entry["id"] if isinstance(entry["id"], int) else 1,
                "category_id": 6,
                "area": 1,
                "segmentation": [GOOD_POLYGON],
            }
        )
    ann_path.write_text(json.dumps(doc))
    before = digest(tmp_path / "raw")
    summary = prepare_modanet(ann_path, images_dir, tmp_path / "out", (48, 32), 0.2, 0.2, 0)
    reasons = reasons_of(tmp_path / "out")
    assert summary["images"] == 12
    for n, (kind, (_, expected)) in enumerate(IMAGE_ENTRY_CASES.items()):
        assert expected in reasons[f"bad{n}.jpg"], kind
    assert digest(tmp_path / "raw") == before
