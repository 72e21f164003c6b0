"""The data stage of config/paper.yaml through the real Snakefile: the dry run without data says what
to download or place where, and with look-alike files "published" at file:// URLs or placed by
hand the fetch → check → extract → prepare rules run, then nothing is redone."""
import hashlib
import os
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from raw_fixtures import make_fashionpedia, make_fs14, make_modanet, pack
from workflow_helpers import ROOT, snakemake

pytestmark = pytest.mark.e2e

TARGETS = [f"results/data/{name}/manifest.tsv" for name in ("fashionstyle14", "modanet", "fashionpedia")]


def digest(path, algo):
    return hashlib.new(algo, path.read_bytes()).hexdigest()


def test_dry_run_without_data_says_what_to_get_where(tmp_path):
    shutil.copy(ROOT / "config" / "paper.yaml", tmp_path / "tiny.yaml")
    out = snakemake(tmp_path, "-n", *TARGETS)
    said = out.stderr
    expected = {
        "FashionStyle14": ["resources/raw/fashionstyle14/FashionStyle14_v1.zip",
                           "resources/raw/fashionstyle14/FashionStyle14_v1", "https://esslab.jp/~ess/en/data/fashionstyle14/"],
        "ModaNet annotations": ["resources/raw/modanet/modanet2018_instances_train.json",
                                "96478657d20e322e9d3282c6d73c0c4c", "media.githubusercontent.com"],
        "PaperDoll images": ["resources/raw/paperdoll/photos.lmdb.tar", "a404789687fc3906d7d843942c802f53",
                             "resources/raw/paperdoll/photos.lmdb", "vision.is.tohoku.ac.jp"],
        "Fashionpedia train annotations": ["resources/raw/fashionpedia/instances_attributes_train2020.json"],
        "Fashionpedia val annotations": ["resources/raw/fashionpedia/instances_attributes_val2020.json"],
        "Fashionpedia train images": ["resources/raw/fashionpedia/train2020.zip"],
        "Fashionpedia val images": ["resources/raw/fashionpedia/val_test2020.zip"],
    }
    lines = [line for line in said.splitlines() if line.startswith("fashion-rembg:")]
    for label, facts in expected.items():
        line = next((x for x in lines if label in x), None)
        assert line is not None, (label, said)
        for fact in facts:
            assert fact in line, (fact, line)
    for rule in ["fetch_fashionstyle14_archive", "extract_fashionstyle14", "fetch_modanet_annotations",
                 "fetch_modanet_lmdb_archive", "extract_paperdoll", "fetch_fashionpedia_val_images",
                 "prepare_fashionpedia"]:
        assert rule in out.stdout, rule
    assert not (tmp_path / "resources").exists(), "a dry run must not touch the disk"


def test_paper_data_stage_runs_on_placed_and_downloaded_files(tmp_path):
    server = tmp_path / "server"  # what the "internet" holds, reached through file:// URLs
    work = tmp_path / "work"
    work.mkdir()
    ann, lmdb_dir = make_modanet(server / "modanet")
    lmdb_tar = pack(lmdb_dir, server / "photos.lmdb.tar", "tar")
    fp = make_fashionpedia(server / "fashionpedia")
    # FashionStyle14 has no URL: placed by hand, a gzipped tar under a .zip name (dispatch on content)
    fs14_tar = pack(make_fs14(tmp_path / "fs14src" / "FashionStyle14_v1"), tmp_path / "fs14.tgz", "tar.gz")
    placed = work / "resources/raw/fashionstyle14/FashionStyle14_v1.zip"
    placed.parent.mkdir(parents=True)
    shutil.copy(fs14_tar, placed)

    config = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    ds = config["datasets"]
    ds["fashionstyle14"]["store_size"] = [32, 32]
    ds["modanet"]["store_size"] = ds["fashionpedia"]["store_size"] = [48, 32]
    ds["modanet"]["annotations"].update(url=ann.as_uri(), md5=digest(ann, "md5"), sha256=digest(ann, "sha256"))
    ds["modanet"]["lmdb_archive"].update(url=lmdb_tar.as_uri(), md5=digest(lmdb_tar, "md5"))
    for key in ("train_annotations", "val_annotations", "train_images", "val_images"):
        ds["fashionpedia"][key]["url"] = "file://" + os.path.abspath(fp[key])
    ds["fashionpedia"]["split"] = {"val_fraction": 0.25, "seed": 0}
    ds["modanet"]["split"] = {"val_fraction": 0.2, "test_fraction": 0.2, "seed": 0}
    (work / "tiny.yaml").write_text(yaml.safe_dump(config))

    out = snakemake(work, *TARGETS)
    data = work / "results" / "data"
    fs14 = pd.read_csv(data / "fashionstyle14" / "manifest.tsv", sep="\t")
    assert fs14["split"].value_counts().to_dict() == {"train": 14 * 2 + 6, "val": 14, "test": 14}
    assert len(pd.read_csv(data / "fashionstyle14" / "quarantine.tsv", sep="\t")) == 5
    modanet = pd.read_csv(data / "modanet" / "manifest.tsv", sep="\t")
    assert len(modanet) == 8 and np.load(data / "modanet" / "classmaps.npy").shape == (8, 48, 32)
    fashionpedia = pd.read_csv(data / "fashionpedia" / "manifest.tsv", sep="\t")
    assert fashionpedia["split"].value_counts().to_dict() == {"train": 2, "val": 1, "test": 3}
    # downloads are read-only, recorded in the ledger; the placed archive's hash was recorded at first use
    raw = work / "resources" / "raw"
    assert (raw / "paperdoll" / "photos.lmdb.tar").stat().st_mode & 0o222 == 0  # protected
    assert placed.stat().st_mode & 0o200, "a hand-placed file is not touched"
    ledger = (work / "resources" / "checksums.tsv").read_text()
    assert digest(placed, "sha256") in ledger and digest(lmdb_tar, "md5") in ledger
    assert "Pin it in the config: datasets.fashionstyle14.archive.sha256" in \
        (work / "results/logs/extract/fashionstyle14.log").read_text()
    assert (work / "resources/extracted/paperdoll/photos.lmdb/data.mdb").is_file()

    # nothing is redone; deleting the extracted archive does not bring back a download
    assert "Nothing to be done" in snakemake(work, "-n", *TARGETS).stdout
    os.chmod(raw / "paperdoll" / "photos.lmdb.tar", 0o644)
    (raw / "paperdoll" / "photos.lmdb.tar").unlink()
    again = snakemake(work, "-n", *TARGETS)
    assert "Nothing to be done" in again.stdout, again.stdout
    assert "PaperDoll" not in again.stderr, again.stderr
    # the annotated images were taken out of the LMDB (bytes unchanged): the 40 GB LMDB may go too
    shutil.rmtree(work / "resources/extracted/paperdoll")
    assert len(list((work / "resources/extracted/modanet_images").glob("*.jpg"))) == 8
    gone = snakemake(work, "-n", *TARGETS)
    assert "Nothing to be done" in gone.stdout and "PaperDoll" not in gone.stderr, gone.stdout + gone.stderr
    assert out.returncode == 0
