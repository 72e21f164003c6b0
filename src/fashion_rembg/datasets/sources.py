"""Where each dataset's raw inputs come from: an already extracted folder, an archive to extract,
or a file to download. The Snakefile asks `plan(config)` once at start-up; it decides per dataset
from what is on disk, so nothing is re-downloaded or re-extracted needlessly:

* a configured folder that exists is used as it is (FashionStyle14_v1/, photos.lmdb/, train/);
* else a finished extraction is reused even when its archive has since been deleted;
* else the archive is extracted (rule extract_<name>) and, when missing, fetched
  (rule fetch_<dataset>_<key>: downloaded where a URL is configured, else a clear error).

Config values are either a plain path (used as is: the demo) or a download entry
`{path, url, sha256, md5, max_gb}` (fetched when missing, checked against its hashes when used).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import atomic_file
from ..choices import TASKS
from ..errors import ConfigError, PipelineError
from .archives import safe_extract
from .fetch import RawFile, download, verify
from .own import own_names, plan_own

log = logging.getLogger(__name__)

DATASETS = ("fashionstyle14", "modanet", "fashionpedia")
FS14_HOME = "https://esslab.jp/~ess/en/data/fashionstyle14/"
MODANET_HOME = "https://github.com/eBay/modanet"
PAPERDOLL_HOME = "https://github.com/kyamagu/paperdoll (data/chictopia)"
FASHIONPEDIA_HOME = "https://github.com/cvdfoundation/fashionpedia"
MARKER = "extracted.json"

# (dataset, key) → (label, distributed file name, where a person gets it)
DISTRIBUTED = {
    ("fashionstyle14", "archive"): (
        "FashionStyle14 archive",
        "the FashionStyle14 archive (zip or tar.*, any file name; top folder FashionStyle14_v1/)",
        f"{FS14_HOME} (on request)"),
    ("modanet", "annotations"): (
        "ModaNet annotations", "modanet2018_instances_train.json",
        f"{MODANET_HOME} (annotations/, stored with Git LFS: `git lfs pull` after cloning)"),
    ("modanet", "lmdb_archive"): (
        "PaperDoll images", "photos.lmdb.tar",
        f"{PAPERDOLL_HOME}: http://vision.is.tohoku.ac.jp/chictopia2/photos.lmdb.tar (~40 GB)"),
    ("fashionpedia", "train_annotations"): (
        "Fashionpedia train annotations", "instances_attributes_train2020.json", FASHIONPEDIA_HOME),
    ("fashionpedia", "val_annotations"): (
        "Fashionpedia val annotations", "instances_attributes_val2020.json", FASHIONPEDIA_HOME),
    ("fashionpedia", "train_images"): (
        "Fashionpedia train images", "train2020.zip", f"{FASHIONPEDIA_HOME} (its extracted train/ folder works too)"),
    ("fashionpedia", "val_images"): (
        "Fashionpedia val images", "val_test2020.zip",
        f"{FASHIONPEDIA_HOME} (the val images are in its test/ folder; the extracted folder works too)"),
}


def downloads(config: dict) -> dict:
    settings = {"ledger": "resources/checksums.tsv", "extract_dir": "resources/extracted", "timeout_s": 60}
    settings.update(config.get("downloads") or {})
    return settings


def raw_file(config: dict, dataset: str, key: str) -> RawFile | None:
    """The configured raw file `datasets.<dataset>.<key>` (None when not configured)."""
    value = config["datasets"].get(dataset, {}).get(key)
    if value is None:
        return None
    label, name, where = DISTRIBUTED.get((dataset, key), ("", "", ""))
    if isinstance(value, str):
        return RawFile(dataset, key, value, name=name, where=where, label=label)
    if not isinstance(value, dict) or not value.get("path"):
        raise ConfigError(f"datasets.{dataset}.{key}: expected a path or a download entry with a 'path'")
    return RawFile(dataset, key, str(value["path"]), url=value.get("url") or None,
                   sha256=value.get("sha256") or None, md5=value.get("md5") or None,
                   max_gb=value.get("max_gb"), name=name, where=where, label=label, managed=True)


@dataclass
class Extraction:
    name: str
    archive: RawFile
    target: str

    @property
    def marker(self) -> str:
        return f"{self.target}/{MARKER}"


@dataclass
class DatasetPlan:
    dataset: str
    inputs: dict[str, str | list[str]] = field(default_factory=dict)  # named inputs of the prepare rule
    fetch: list[RawFile] = field(default_factory=list)  # files a fetch rule may produce
    extract: list[Extraction] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # what the user must do (empty: all there)
    modanet_images: dict[str, str] | None = None  # inputs/output of extract_modanet_images


def _file_input(plan: DatasetPlan, raw: RawFile | None, input_name: str) -> None:
    if raw is None:
        raise ConfigError(f"datasets.{plan.dataset}.{input_name} is required")
    plan.inputs[input_name] = raw.path
    if Path(raw.path).exists():
        return
    if raw.managed:
        plan.fetch.append(raw)
    plan.missing.append(f"{raw.what}: {raw.how_to_get()}")


def _archive(plan: DatasetPlan, config: dict, name: str, archive: RawFile, folder: str, describe_folder: str) -> None:
    """Plan extracting `archive` (fetched first if missing) unless a finished extraction can be reused."""
    extraction = Extraction(name, archive, f"{downloads(config)['extract_dir']}/{name}")
    plan.inputs[name] = extraction.marker
    if Path(extraction.marker).exists() and not Path(archive.path).exists():
        return  # extracted earlier, archive deleted since: reuse, never download again
    plan.extract.append(extraction)
    if not Path(archive.path).exists():
        if archive.managed:
            plan.fetch.append(archive)
        plan.missing.append(
            f"{archive.what}: {archive.how_to_get()}. It is then checked and extracted into {extraction.target}/ "
            f"(or place the extracted {describe_folder} at {folder} instead)"
        )


def _fs14_split_csv(root: Path) -> Path | None:
    return next((root / n for n in ("train.csv", "val.csv", "valid.csv", "test.csv") if (root / n).is_file()), None)


def plan_fashionstyle14(config: dict) -> DatasetPlan:
    ds = config["datasets"]["fashionstyle14"]
    plan = DatasetPlan("fashionstyle14")
    root = Path(ds["root"])
    archive = raw_file(config, "fashionstyle14", "archive")
    folder_ok = root.is_dir() and _fs14_split_csv(root) is not None
    if folder_ok or archive is None:
        # The demo writes this folder in a job: its CSVs are the inputs linking prepare to demo_data.
        val = "valid.csv" if (root / "valid.csv").is_file() and not (root / "val.csv").is_file() else "val.csv"
        plan.inputs["fashionstyle14"] = [str(root / n) for n in ("train.csv", val, "test.csv")]
        if not folder_ok:
            plan.missing.append(
                f"FashionStyle14 missing: place the extracted FashionStyle14_v1/ folder (dataset/<style>/…, train.csv, "
                f"val.csv, test.csv) at {root}, or configure datasets.fashionstyle14.archive; get it from {FS14_HOME}")
    else:
        _archive(plan, config, "fashionstyle14", archive, str(root), "FashionStyle14_v1/ folder")
    return plan


def plan_modanet(config: dict) -> DatasetPlan:
    ds = config["datasets"]["modanet"]
    plan = DatasetPlan("modanet")
    _file_input(plan, raw_file(config, "modanet", "annotations"), "annotations")
    lmdb_dir = Path(ds["lmdb"])
    archive = raw_file(config, "modanet", "lmdb_archive")
    extract_dir = downloads(config)["extract_dir"]
    images_marker = f"{extract_dir}/modanet_images/{MARKER}"
    folder_ok = (lmdb_dir / "data.mdb").is_file()
    lmdb_around = folder_ok or Path(f"{extract_dir}/paperdoll/{MARKER}").exists() or (
        archive is not None and Path(archive.path).exists())
    plan.inputs["images"] = images_marker
    if Path(images_marker).exists() and not lmdb_around:
        return plan  # images already taken out of the LMDB, which was deleted since: never fetch it again
    if folder_ok or archive is None:
        lmdb_input = str(lmdb_dir / "data.mdb")
        if not folder_ok:
            plan.missing.append(
                "PaperDoll images missing: extract photos.lmdb.tar "
                f"(http://vision.is.tohoku.ac.jp/chictopia2/photos.lmdb.tar, "
                f"md5 a404789687fc3906d7d843942c802f53) so that {lmdb_dir}/data.mdb exists, "
                "or configure datasets.modanet.lmdb_archive to let the pipeline fetch and extract it")
    else:
        _archive(plan, config, "paperdoll", archive, str(lmdb_dir), "photos.lmdb/ folder")
        lmdb_input = plan.inputs.pop("paperdoll")
    plan.modanet_images = {"annotations": plan.inputs["annotations"], "lmdb": lmdb_input, "marker": images_marker}
    return plan


def plan_fashionpedia(config: dict) -> DatasetPlan:
    plan = DatasetPlan("fashionpedia")
    for key in ("train_annotations", "val_annotations", "train_images", "val_images"):
        _file_input(plan, raw_file(config, "fashionpedia", key), key)
    return plan


PLANNERS = {"fashionstyle14": plan_fashionstyle14, "modanet": plan_modanet, "fashionpedia": plan_fashionpedia}


def plan(config: dict) -> dict[str, DatasetPlan]:
    """One plan per configured dataset."""
    configured = config.get("datasets", {})
    for name in sorted(used_datasets(config) - set(configured)):
        raise ConfigError(f"a task uses {name}, but datasets.{name} is not configured (see config/paper.yaml)")
    plans = {name: PLANNERS[name](config) for name in DATASETS if name in configured}
    used = used_datasets(config)
    return plans | {name: plan_own(config, name, DatasetPlan(name), used) for name in own_names(config)}


def used_datasets(config: dict) -> set[str]:
    tasks = [t for t in TASKS if (config.get(t) or {}).get("enabled", True)]
    return {config[t]["dataset"] for t in tasks if config.get(t)}


def missing_messages(config: dict) -> list[str]:
    """What to download or place where, for every configured dataset (unused ones say so)."""
    used = used_datasets(config)
    messages = []
    for name, p in plan(config).items():
        suffix = "" if name in used else f" [only needed for results/data/{name}/: no enabled task uses {name}]"
        messages += [m + suffix for m in p.missing]
    return messages


# ----------------------------------------------------------------------------------------------
# Raw folders changed after prepare
# ----------------------------------------------------------------------------------------------
LISTINGS_DIR = "results/raw_listings"


def _listing(folder: Path) -> dict:
    """Files, bytes and a digest of (path, size, mtime) of every file below `folder`: cheap (stat
    only), and any added, removed, replaced or rewritten file changes it."""
    digest, files, size = hashlib.sha256(), 0, 0
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath, name)
            try:
                st = path.stat()
                entry = (st.st_size, st.st_mtime_ns)
            except OSError:  # a broken link: its presence still counts
                entry = (-1, -1)
            digest.update(f"{path.relative_to(folder)}\0{entry[0]}\0{entry[1]}\n".encode())
            files, size = files + 1, size + max(entry[0], 0)
    return {"files": files, "bytes": size, "sha256": digest.hexdigest()}


def _raw_folders(dataset: str, dataset_plan: DatasetPlan) -> list[Path]:
    """Folders of raw files read by prepare but not declared one by one as its inputs."""
    if dataset == "fashionstyle14" and "fashionstyle14" in dataset_plan.inputs:  # a placed folder
        return [Path(dataset_plan.inputs["fashionstyle14"][0]).parent / "dataset"]
    if dataset == "fashionpedia":  # image folders given instead of the zips
        return [Path(dataset_plan.inputs[k]) for k in ("train_images", "val_images") if k in dataset_plan.inputs]
    if dataset not in DATASETS:  # own data: the ImageFolder root, or a COCO image folder
        return [Path(dataset_plan.inputs[k]) for k in ("root", "images") if k in dataset_plan.inputs]
    return []  # ModaNet: the LMDB file and the extracted images (a job's output) are inputs already


def track_raw_changes(config: dict, plans: dict[str, DatasetPlan], listings_dir: str = LISTINGS_DIR) -> None:
    """Make a changed raw folder re-prepare its dataset: a listing of each folder (sizes, mtimes)
    becomes an input of prepare_<dataset>; it is rewritten, and so newer than the store, only when
    the listing differs. Demo data is skipped: a job writes it, so its outputs already say when."""
    demo = (config.get("demo") or {}).get("enabled")
    for dataset, dataset_plan in plans.items():
        if demo and dataset not in own_names(config):
            continue
        folders = [f for f in _raw_folders(dataset, dataset_plan) if f.is_dir()]
        if not folders:
            continue
        text = json.dumps({str(f): _listing(f) for f in folders}, indent=1, sort_keys=True) + "\n"
        path = Path(listings_dir) / f"{dataset}.json"
        if not path.is_file() or path.read_text() != text:
            with atomic_file(path) as tmp:
                tmp.write_text(text)
            log.info("raw data of %s listed in %s (new or changed since the last run)", dataset, path)
        dataset_plan.inputs["raw_listing"] = str(path)


# ----------------------------------------------------------------------------------------------
# Entry points of the fetch / extract rules (called from one-line `run:` blocks)
# ----------------------------------------------------------------------------------------------
def fetch_raw(config: dict, dataset: str, key: str, output: str) -> dict:
    raw = raw_file(config, dataset, key)
    settings = downloads(config)
    return download(raw, output, settings["ledger"], float(settings["timeout_s"]))


def extract_raw(config: dict, name: str, archive_path: str, marker: str) -> dict:
    """Check the archive's hashes, then extract it safely next to the marker, which is written last."""
    key = {"fashionstyle14": ("fashionstyle14", "archive"), "paperdoll": ("modanet", "lmdb_archive")}[name]
    raw = raw_file(config, *key)
    row = verify(raw, downloads(config)["ledger"], archive_path)
    limit = int(float(raw.max_gb if raw.max_gb is not None else 100) * 1e9)
    target = Path(marker).parent
    summary = safe_extract(Path(archive_path), target, limit)
    summary["sha256"] = row.get("sha256")
    Path(marker).write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary


def extract_modanet_images(config: dict, annotations: str, lmdb_input: str, marker: str) -> dict:
    """The annotated images out of photos.lmdb, bytes unchanged, into the marker's folder; the
    annotation file's pinned hashes are checked first (it decides which bytes are written)."""
    from .modanet import extract_images

    check_file(config, "modanet", "annotations", annotations)
    return extract_images(Path(annotations), Path(lmdb_input).parent, Path(marker).parent)


def check_file(config: dict, dataset: str, key: str, path: str | None = None) -> None:
    """Verify a managed raw file before a prepare step reads it (plain paths are not hashed)."""
    raw = raw_file(config, dataset, key)
    if raw is not None and raw.managed:
        verify(raw, downloads(config)["ledger"], path or raw.path)


def job_log(log_path: str, fn, *args):
    """Run a fetch/extract step (a Snakemake `run:` block) with its log file.

    A PipelineError is logged and re-raised as its message alone: it already says what to do,
    and a traceback would only bury it.
    """
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_path, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    previous = root.level
    root.setLevel(logging.INFO)
    try:
        return fn(*args)
    except PipelineError as err:
        log.error("%s", err)
        raise PipelineError(str(err)) from None
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
        handler.close()
