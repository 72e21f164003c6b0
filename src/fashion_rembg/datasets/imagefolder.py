"""Your own classification photos in torchvision's ImageFolder layout → image store.

`<root>/<class>/<...>/<image>`: class names are the sub-folders, sorted (torchvision's indices);
images are found below each class folder at any depth. Splits come from split lists
(`split_lists: {train, val, test}`, CSV or TXT whose first column is `<class>/<file>` relative to
the root, with or without a header; val optional) or, without lists, from a seeded split
stratified by class (`split: {val_fraction, test_fraction, seed}`). Files that are not images,
cannot be decoded, or are listed but missing become quarantine rows with the reason.
"""
from __future__ import annotations

import csv
import functools
import io
import logging
import os
from pathlib import Path

import numpy as np

from ..errors import DataError
from .archives import check_inside, path_inside
from .fashionstyle14 import _Context, _work
from .own import IMAGE_EXTENSIONS, SPLITS, class_folders, imagefolder_problem, is_image_name, list_paths
from .parallel import ordered_map
from .store import StoreWriter, require_splits, split_counts, write_store_tables

log = logging.getLogger(__name__)
IGNORED = {"thumbs.db", "desktop.ini"}  # operating-system clutter, not data


def scan(root: Path, classes: list[str]) -> tuple[dict[str, Path], list[dict]]:
    """`{"<class>/<relpath>": path}` of every image below the class folders, plus quarantine rows for
    other files (hidden files and OS clutter are skipped) and for links leading out of the root."""
    files, quarantine = {}, []
    for cls in classes:
        for dirpath, dirnames, filenames in os.walk(root / cls):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith(".") or name.lower() in IGNORED:
                    continue
                path = Path(dirpath, name)
                rel = path.relative_to(root).as_posix()
                if not is_image_name(name):
                    quarantine.append({"source": rel, "reason": f"not an image file (extension not one of "
                                                                f"{', '.join(IMAGE_EXTENSIONS)})"})
                    continue
                try:
                    check_inside(root, path, rel)
                except DataError as err:
                    quarantine.append({"source": rel, "reason": str(err)})
                    continue
                files[rel] = path
    return files, quarantine


def stratified_split(labels: dict[str, str], val_fraction: float, test_fraction: float, seed: int) -> dict[str, str]:
    """relpath → split; per class, a seeded permutation of its sorted files (independent of listing order)."""
    by_class: dict[str, list[str]] = {}
    for rel, cls in labels.items():
        by_class.setdefault(cls, []).append(rel)
    out = {}
    for index, cls in enumerate(sorted(by_class)):
        ordered = sorted(by_class[cls])
        order = np.random.default_rng([seed, index]).permutation(len(ordered))
        n_val, n_test = round(len(ordered) * val_fraction), round(len(ordered) * test_fraction)
        for rank, pos in enumerate(order):
            out[ordered[pos]] = "val" if rank < n_val else "test" if rank < n_val + n_test else "train"
    return out


def read_split_list(path: Path) -> list[tuple[int, str]]:
    """(line number, first column) of a CSV/TXT split list; a first line without '/' is a header."""
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"split list {path} is not UTF-8 text; expected one <class>/<file> path per line") from None
    rows = []
    for lineno, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        first = row[0].strip() if row else ""
        if not first:
            continue
        if not rows and lineno == 1 and "/" not in first.replace("\\", "/"):
            continue  # header (path, filename, ...)
        rows.append((lineno, first))
    return rows


def listed_splits(root: Path, lists: dict[str, str], files: dict[str, Path], classes: list[str],
                  quarantine: list[dict]) -> dict[str, str]:
    """relpath → split from the split lists; bad, unknown, missing or repeated rows are quarantined."""
    out, seen = {}, {}
    for split in SPLITS:
        if split not in lists:
            continue
        name = Path(lists[split]).name
        for lineno, raw in read_split_list(Path(lists[split])):
            where = f"{name}:{lineno}"
            try:
                rel = path_inside(root, raw, f"{where}: path").relative_to(root).as_posix()
            except DataError as err:
                quarantine.append({"source": raw, "reason": str(err), "split": split})
                continue
            if rel.split("/")[0] not in classes:
                reason = f"{where}: not of the form <class>/<file> with a class folder of {root}"
            elif rel in seen:
                reason = f"{where}: listed again (first in {seen[rel]})"
            elif rel not in files:
                reason = f"{where}: listed in the {split} list but no such image under {root}"
            else:
                seen[rel] = where
                out[rel] = split
                continue
            quarantine.append({"source": raw, "reason": reason, "split": split})
    return out


def prepare_imagefolder(name: str, root: Path, out_dir: Path, store_size: tuple[int, int], split: dict,
                        split_lists: dict[str, str] | None = None, workers: int = 1, fit: str = "cover") -> dict:
    """Write manifest.tsv, quarantine.tsv, classes.json and images.npy of dataset `name` into out_dir.

    `split_lists`: `{train, test[, val]}` list files, relative to `root` or absolute."""
    root, out_dir = Path(root), Path(out_dir)
    problem = imagefolder_problem(name, root)
    if problem:
        raise DataError(problem)
    classes = class_folders(root)
    files, quarantine = scan(root, classes)
    label_of = {rel: rel.split("/")[0] for rel in files}
    if split_lists:
        split_lists = list_paths(str(root), split_lists)
        splits = listed_splits(root, split_lists, files, classes, quarantine)
        if "val" not in split_lists:  # carve val out of the train list, stratified
            train = {rel: label_of[rel] for rel, s in splits.items() if s == "train"}
            splits |= stratified_split(train, split["val_fraction"], 0.0, split["seed"])
        log.info("%s: %d images on disk are in no split list (not used)", name, len(set(files) - set(splits)))
    else:
        splits = stratified_split(label_of, split["val_fraction"], split["test_fraction"], split["seed"])
    listed = sorted(splits)
    height, width = store_size
    writer = StoreWriter(out_dir, len(listed), {"images": (height, width, 3)})
    rows = []
    try:
        results = ordered_map(_work, [(rel, str(files[rel])) for rel in listed],
                              open_context=functools.partial(_Context, tuple(store_size), fit),
                              workers=workers, chunk_size=16)
        for slot, (rel, (row, note)) in enumerate(zip(listed, results)):
            if row is None:
                quarantine.append({"source": rel, "reason": note, "split": splits[rel]})
                continue
            writer.put(slot, images=row)
            rows.append({"id": rel, "source": rel, "split": splits[rel], "label": label_of[rel],
                         "label_idx": classes.index(label_of[rel]), "note": note})
    except BaseException:
        writer.abort()
        raise
    count = writer.finish()
    manifest = write_store_tables(out_dir, rows, quarantine, "classification", classes)
    summary = {
        "images": count,
        "classes": len(classes),
        "quarantined": len(quarantine),
        "splits": split_counts(manifest),
    }
    log.info("%s prepared: %s", name, summary)
    if count == 0:
        raise DataError(f"{name}: no usable image under {root}; see {out_dir / 'quarantine.tsv'}")
    require_splits(name, manifest, quarantine, SPLITS, out_dir)
    return summary
