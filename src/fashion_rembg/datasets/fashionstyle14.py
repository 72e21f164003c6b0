"""FashionStyle14: `FashionStyle14_v1/dataset/<style>/<file>` + headerless split CSVs → image store."""
from __future__ import annotations

import logging
import re
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from ..errors import DataError
from .store import MANIFEST_COLUMNS, StoreWriter, fit_image, to_rgb, write_json, write_tsv

log = logging.getLogger(__name__)

STYLES = (
    "conservative", "dressy", "ethnic", "fairy", "feminine", "gal", "girlish",
    "kireime-casual", "lolita", "mode", "natural", "retro", "rock", "street",
)
SPLIT_FILES = {"train": ("train.csv",), "val": ("val.csv", "valid.csv"), "test": ("test.csv",)}
LINE_PATTERN = re.compile(r"^dataset/([^/]+)/([^/]+)$")


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def split_csv_paths(root: Path) -> dict[str, Path]:
    """The split CSV of each split; `valid.csv` is accepted for `val`."""
    root = Path(root)
    found = {}
    for split, names in SPLIT_FILES.items():
        candidates = [root / n for n in names if (root / n).is_file()]
        if not candidates:
            raise DataError(
                f"FashionStyle14: {root / names[0]} not found. Place the extracted FashionStyle14_v1/ "
                f"folder (with dataset/ and {', '.join(n for ns in SPLIT_FILES.values() for n in ns[:1])}) "
                f"at {root} (download: https://esslab.jp/~ess/en/data/fashionstyle14/)."
            )
        found[split] = candidates[0]
    return found


def check_style_folders(root: Path) -> None:
    dataset_dir = Path(root) / "dataset"
    if not dataset_dir.is_dir():
        raise DataError(f"FashionStyle14: {dataset_dir} is missing; expected one folder per style: {', '.join(STYLES)}")
    present = {nfc(p.name) for p in dataset_dir.iterdir() if p.is_dir()}
    missing, extra = sorted(set(STYLES) - present), sorted(present - set(STYLES))
    if missing or extra:
        raise DataError(
            f"FashionStyle14: {dataset_dir} must hold exactly the 14 style folders "
            f"({', '.join(STYLES)}); missing: {missing or 'none'}, unexpected: {extra or 'none'}"
        )


def index_files(root: Path) -> dict[str, Path]:
    """Map NFC-normalised `dataset/<style>/<name>` → real path (archives from macOS store NFD names)."""
    index = {}
    for path in (Path(root) / "dataset").glob("*/*"):
        if path.is_file():
            index[nfc(f"dataset/{path.parent.name}/{path.name}")] = path
    return index


def read_split_lists(root: Path) -> tuple[list[tuple[str, str, str]], list[dict]]:
    """(relpath, style, split) for every CSV line, plus quarantine rows for malformed lines."""
    entries, quarantine, seen = [], [], {}
    for split, csv_path in split_csv_paths(root).items():
        for lineno, raw in enumerate(csv_path.read_text(encoding="utf-8-sig").splitlines(), start=1):
            line = nfc(raw.strip().strip('"'))
            if not line:
                continue
            where = f"{csv_path.name}:{lineno}"
            match = LINE_PATTERN.match(line)
            if not match:
                quarantine.append({"source": line, "reason": f"{where}: not of the form dataset/<style>/<file>"})
                continue
            style = match.group(1)
            if style not in STYLES:
                quarantine.append({"source": line, "reason": f"{where}: unknown style {style!r}"})
                continue
            if line in seen:
                quarantine.append({"source": line, "reason": f"{where}: duplicate of {seen[line]}"})
                continue
            seen[line] = where
            entries.append((line, style, split))
    return entries, quarantine


def load_rgb(path: Path) -> tuple[Image.Image, str]:
    """Decode an image file fully, or raise DataError saying why it is unusable."""
    if path.stat().st_size == 0:
        raise DataError("zero-byte file")
    try:
        with Image.open(path) as img:
            img.load()
            return to_rgb(img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"undecodable image ({type(err).__name__}: {err})") from None


def prepare_fashionstyle14(root: Path, out_dir: Path, store_size: tuple[int, int]) -> dict:
    """Write manifest.tsv, quarantine.tsv, classes.json and images.npy into out_dir."""
    root, out_dir = Path(root), Path(out_dir)
    check_style_folders(root)
    entries, quarantine = read_split_lists(root)
    files = index_files(root)
    height, width = store_size
    writer = StoreWriter(out_dir, len(entries), {"images": (height, width, 3)})
    rows = []
    for slot, (relpath, style, split) in enumerate(entries):
        path = files.get(relpath) or files.get(nfc(unicodedata.normalize("NFD", relpath)))
        if path is None:
            quarantine.append({"source": relpath, "reason": f"listed in {split} CSV but no such file under {root}"})
            continue
        try:
            img, note = load_rgb(path)
        except DataError as err:
            quarantine.append({"source": relpath, "reason": str(err)})
            continue
        writer.put(slot, images=np.asarray(fit_image(img, store_size)))
        rows.append({"id": Path(relpath).stem, "source": relpath, "split": split, "label": style,
                     "label_idx": STYLES.index(style), "note": note})
    count = writer.finish()
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS[1:])
    manifest.insert(0, "index", range(count))
    write_tsv(manifest, out_dir / "manifest.tsv")
    write_tsv(pd.DataFrame(quarantine, columns=["source", "reason"]), out_dir / "quarantine.tsv")
    write_json({"task": "classification", "classes": list(STYLES)}, out_dir / "classes.json")
    summary = {"images": count, "quarantined": len(quarantine),
               "splits": manifest["split"].value_counts().to_dict()}
    log.info("FashionStyle14 prepared: %s", summary)
    if count == 0:
        raise DataError(f"FashionStyle14: no usable image under {root}; see {out_dir / 'quarantine.tsv'}")
    return summary
