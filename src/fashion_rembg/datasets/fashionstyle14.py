"""FashionStyle14: `FashionStyle14_v1/dataset/<style>/<file>` + headerless split CSVs → image store."""
from __future__ import annotations

import functools
import logging
import re
import unicodedata
from pathlib import Path

from PIL import Image

from ..errors import DataError
from .archives import check_inside, find_dir
from .imaging import DECODE_ERRORS, open_raw, store_row
from .parallel import ordered_map
from .store import StoreWriter, require_splits, split_counts, to_rgb, write_store_tables

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


def _read_lines(csv_path: Path) -> list[str]:
    data = csv_path.read_bytes()
    for encoding in ("utf-8-sig", "cp932"):  # a Japanese dataset: Shift-JIS lists are plausible
        try:
            return data.decode(encoding).splitlines()
        except UnicodeDecodeError:
            continue
    raise DataError(f"FashionStyle14: {csv_path} is neither UTF-8 nor Shift-JIS text; is it the split list?")


def read_split_lists(root: Path) -> tuple[list[tuple[str, str, str]], list[dict]]:
    """(relpath, style, split) for every CSV line, plus quarantine rows for malformed lines."""
    entries, quarantine, seen = [], [], {}
    for split, csv_path in split_csv_paths(root).items():
        for lineno, raw in enumerate(_read_lines(csv_path), start=1):
            line = nfc(raw.split(",")[0].strip().strip('"'))
            line = line.removeprefix("./").removeprefix("FashionStyle14_v1/")
            if not line:
                continue
            where = f"{csv_path.name}:{lineno}"
            match = LINE_PATTERN.match(line)
            if not match:
                quarantine.append({"source": line, "reason": f"{where}: not of the form dataset/<style>/<file>",
                                   "split": split})
                continue
            style = match.group(1)
            if style not in STYLES:
                quarantine.append({"source": line, "reason": f"{where}: unknown style {style!r}", "split": split})
                continue
            if line in seen:
                quarantine.append({"source": line, "reason": f"{where}: duplicate of {seen[line]}", "split": split})
                continue
            seen[line] = where
            entries.append((line, style, split))
    return entries, quarantine


def find_root(root: Path) -> Path:
    """The FashionStyle14_v1 folder: `root` itself or a folder below it (an extracted archive)."""
    root = Path(root)
    if not root.is_dir() or (root / "dataset").is_dir():
        split_csv_paths(root)  # raises the "place the folder here" / "train.csv missing" error
        return root
    try:
        return find_dir(root, lambda d: (d / "dataset").is_dir() and (d / "train.csv").is_file(),
                        "FashionStyle14_v1 folder (dataset/ and train.csv)")
    except DataError as err:
        raise DataError(f"FashionStyle14: {err}. Expected the layout FashionStyle14_v1/dataset/<style>/<file> "
                        f"with train.csv, val.csv, test.csv beside dataset/.") from None


def load_rgb(path: Path) -> tuple[Image.Image, str]:
    """Decode an image file fully, or raise DataError saying why it is unusable."""
    img = open_raw(path)
    try:
        return to_rgb(img)
    except DECODE_ERRORS as err:
        raise DataError(f"undecodable image ({type(err).__name__}: {err})") from None


class _Context:
    def __init__(self, store_size: tuple[int, int], fit: str = "cover"):
        self.store_size, self.fit = store_size, fit


def _work(ctx: _Context, item: tuple[str, str]):
    relpath, path = item
    try:
        return store_row(path, ctx.store_size, ctx.fit)
    except DataError as err:
        return None, str(err)
    except OSError as err:  # unreadable file (permissions, I/O error)
        return None, f"unreadable file ({err})"


def prepare_fashionstyle14(root: Path, out_dir: Path, store_size: tuple[int, int], workers: int = 1,
                           fit: str = "cover") -> dict:
    """Write manifest.tsv, quarantine.tsv, classes.json and images.npy into out_dir."""
    root, out_dir = find_root(root), Path(out_dir)
    check_style_folders(root)
    entries, quarantine = read_split_lists(root)
    files = index_files(root)
    listed = []
    for relpath, style, split in entries:
        path = files.get(relpath)
        if path is None:
            quarantine.append({"source": relpath, "reason": f"listed in {split} CSV but no such file under {root}",
                               "split": split})
            continue
        try:
            check_inside(root, path, relpath)
        except DataError as err:
            quarantine.append({"source": relpath, "reason": str(err), "split": split})
            continue
        listed.append((relpath, style, split, path))
    height, width = store_size
    writer = StoreWriter(out_dir, len(listed), {"images": (height, width, 3)})
    rows = []
    items = [(relpath, str(path)) for relpath, _, _, path in listed]
    try:
        results = ordered_map(_work, items, open_context=functools.partial(_Context, tuple(store_size), fit),
                              workers=workers, chunk_size=16)
        for slot, ((relpath, style, split, _), (row, note)) in enumerate(zip(listed, results)):
            if row is None:
                quarantine.append({"source": relpath, "reason": note, "split": split})
                continue
            writer.put(slot, images=row)
            rows.append({"id": Path(relpath).stem, "source": relpath, "split": split, "label": style,
                         "label_idx": STYLES.index(style), "note": note})
    except BaseException:
        writer.abort()
        raise
    count = writer.finish()
    manifest = write_store_tables(out_dir, rows, quarantine, "classification", list(STYLES))
    converted = manifest["note"].astype(bool).sum()
    summary = {"images": count, "quarantined": len(quarantine), "converted": int(converted),
               "splits": split_counts(manifest)}
    log.info("FashionStyle14 prepared: %s", summary)
    if count == 0:
        raise DataError(f"FashionStyle14: no usable image under {root}; see {out_dir / 'quarantine.tsv'}")
    require_splits("FashionStyle14", manifest, quarantine, SPLIT_FILES, out_dir)
    return summary
