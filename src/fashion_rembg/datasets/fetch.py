"""Download distributed dataset files and check that a file on disk is the one expected.

Checksums: a pinned `sha256`/`md5` in the config (the published ones are pinned in
config/paper.yaml) must match. Where nothing is published (FashionStyle14, Fashionpedia) the hash
is recorded at first use in a ledger (`downloads.ledger`, a TSV) and logged with the config line
that pins it; a later, different file at the same path is then refused. The ledger doubles as a
hash cache keyed by (path, size, mtime), so a 40 GB archive is hashed once, not at every use.
"""
from __future__ import annotations

import datetime as _dt
import errno
import hashlib
import logging
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError
from .archives import CHUNK, reject_non_data, sniff

log = logging.getLogger(__name__)

LEDGER_COLUMNS = ("path", "size", "mtime_ns", "sha256", "md5", "recorded")


@dataclass(frozen=True)
class RawFile:
    """One distributed file of a dataset, as configured (`datasets.<dataset>.<key>`)."""

    dataset: str
    key: str
    path: str
    url: str | None = None
    sha256: str | None = None
    md5: str | None = None
    max_gb: float | None = None
    name: str = ""  # the distributed file name, e.g. photos.lmdb.tar
    where: str = ""  # where a person gets it
    label: str = ""  # e.g. "PaperDoll images"
    managed: bool = False  # configured as a download entry (fetched when missing, checked when used)

    @property
    def config_key(self) -> str:
        return f"datasets.{self.dataset}.{self.key}"

    @property
    def what(self) -> str:
        return self.label or self.config_key

    def pins(self) -> str:
        parts = [f"{algo} {value}" for algo, value in (("sha256", self.sha256), ("md5", self.md5)) if value]
        return ", ".join(parts)

    def how_to_get(self) -> str:
        """One sentence: where the file goes and how it gets there."""
        pins = f" ({self.pins()})" if self.pins() else ""
        if self.url:
            return (f"{self.path} is downloaded from {self.url}{pins} by rule fetch_{self.dataset}_{self.key}; "
                    f"offline, download {self.name or 'it'} elsewhere and place it at {self.path}")
        how = (f"set {self.config_key}.url if you have a link" if self.managed else
               f"write {self.config_key} as {{path, url}} to let the pipeline download it")
        return (
            f"place {self.name or 'the file'} at {self.path}{pins}; get it from {self.where} (no download URL: {how})"
        )


# ----------------------------------------------------------------------------------------------
# Hashes and the ledger
# ----------------------------------------------------------------------------------------------
def hash_file(path: Path) -> tuple[str, str]:
    sha, md5 = hashlib.sha256(), hashlib.md5()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            sha.update(chunk)
            md5.update(chunk)
    return sha.hexdigest(), md5.hexdigest()


class Ledger:
    """Append-only TSV of hashes seen per path; each line is one os.write (safe for parallel jobs)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def entries(self) -> list[dict]:
        if not self.path.is_file():
            return []
        rows = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            fields = line.split("\t")
            if len(fields) != len(LEDGER_COLUMNS) or fields[0] == "path":
                continue
            row = dict(zip(LEDGER_COLUMNS, fields))
            row["size"], row["mtime_ns"] = int(row["size"]), int(row["mtime_ns"])
            rows.append(row)
        return rows

    def lookup(self, path: Path, size: int, mtime_ns: int) -> dict | None:
        key = os.path.abspath(path)
        for row in reversed(self.entries()):
            if row["path"] == key and row["size"] == size and row["mtime_ns"] == mtime_ns:
                return row
        return None

    def first(self, path: Path) -> dict | None:
        key = os.path.abspath(path)
        return next((row for row in self.entries() if row["path"] == key), None)

    def record(self, path: Path, sha256: str, md5: str) -> dict:
        st = Path(path).stat()
        row = {
            "path": os.path.abspath(path),
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "sha256": sha256,
            "md5": md5,
            "recorded": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists()
        line = ("\t".join(LEDGER_COLUMNS) + "\n" if new else "") + "\t".join(str(row[c]) for c in LEDGER_COLUMNS) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode("utf-8"))
        finally:
            os.close(fd)
        return row


def _check_pins(raw: RawFile, path: Path, sha256: str, md5: str) -> None:
    for algo, expected, actual in (("sha256", raw.sha256, sha256), ("md5", raw.md5, md5)):
        if expected and expected.lower() != actual:
            raise DataError(
                f"{raw.what}: {path} has {algo} {actual}, expected {expected} ({raw.config_key}.{algo}). "
                "The file is truncated, corrupt or another release: delete it and rerun to download it again "
                f"(or place the right file there); only if you trust this file, set {raw.config_key}.{algo}: {actual}."
            )


def verify(raw: RawFile, ledger: str | Path, path: str | Path | None = None) -> dict:
    """Check the file at `path` (default: its configured path) against pins or its first-use hash.

    Folders (an already extracted archive) are accepted as they are. Returns the ledger row.
    """
    path = Path(path or raw.path)
    if not path.exists():
        raise DataError(f"{raw.what} missing: {raw.how_to_get()}")
    if path.is_dir():
        return {"path": os.path.abspath(path), "folder": True}
    reject_non_data(path, raw.what)
    book = Ledger(ledger)
    st = path.stat()
    row = book.lookup(path, st.st_size, st.st_mtime_ns)
    if row is None:
        started = time.monotonic()
        sha256, md5 = hash_file(path)
        log.info("hashed %s (%.1f MB) in %.1f s", path, st.st_size / 1e6, time.monotonic() - started)
        first = book.first(path)
        row = book.record(path, sha256, md5)
    else:
        first = book.first(path)
    _check_pins(raw, path, row["sha256"], row["md5"])
    if not (raw.sha256 or raw.md5):
        if first is not None and first["sha256"] != row["sha256"]:
            raise DataError(
                f"{raw.what}: {path} changed since its first use on {first['recorded']} (sha256 was {first['sha256']}, "
                f"now {row['sha256']}). If the new file is right, pin it with "
                f"{raw.config_key}.sha256: {row['sha256']}; "
                f"otherwise restore the original file."
            )
        log.warning(
            "%s: no checksum pinned; first-use sha256 %s is recorded in %s. Pin it in the config: %s.sha256: %s",
            raw.what,
            row["sha256"],
            ledger,
            raw.config_key,
            row["sha256"],
        )
    return row


# ----------------------------------------------------------------------------------------------
# Download
# ----------------------------------------------------------------------------------------------
def _open(url: str, start: int, timeout: float):
    headers = {"User-Agent": "fashion-rembg (dataset fetch)"}
    if start:
        headers["Range"] = f"bytes={start}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def _transfer(url: str, part: Path, timeout: float) -> None:
    start = part.stat().st_size if part.exists() else 0
    try:
        resp = _open(url, start, timeout)
    except urllib.error.HTTPError as err:
        if err.code != 416 or not start:
            raise
        part.unlink()  # the partial file is not a prefix the server knows: start over
        start, resp = 0, _open(url, 0, timeout)
    with resp:
        status = getattr(resp, "status", None) or 200
        if start and status != 206:
            start = 0  # the server ignored the range request
        length = resp.headers.get("Content-Length")
        total = start + int(length) if length and length.isdigit() else None
        done, next_report = start, time.monotonic() + 30
        with open(part, "ab" if start else "wb") as out:
            while chunk := resp.read(CHUNK):
                out.write(chunk)
                done += len(chunk)
                if time.monotonic() > next_report:
                    share = f" of {total / 1e9:.2f} GB ({100 * done / total:.0f}%)" if total else ""
                    log.info("%s: %.2f GB%s", part.name, done / 1e9, share)
                    next_report = time.monotonic() + 30
    if total is not None and done != total:
        raise DataError(f"download of {url} stopped at {done:,} of {total:,} bytes; rerun to resume")


def download(raw: RawFile, dest: str | Path, ledger: str | Path, timeout: float = 60.0) -> dict:
    """Download `raw.url` to `dest` (resuming a `.part` file), check it, record its hash."""
    dest = Path(dest)
    if not raw.url:
        raise DataError(f"{raw.what} missing: {raw.how_to_get()}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    log.info("downloading %s → %s", raw.url, dest)
    try:
        _transfer(raw.url, part, timeout)
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError, ValueError) as err:
        if isinstance(err, OSError) and getattr(err, "errno", None) == errno.ENOSPC:
            raise DataError(f"disk full while downloading {raw.url} to {dest}") from None
        pins = f" and check {raw.pins()}" if raw.pins() else ""
        raise DataError(
            f"could not download {raw.what} from {raw.url} ({type(err).__name__}: {err}). If this machine is "
            f"offline, download it on another one and place it at {dest}{pins}; a partial download in {part} "
            "is resumed on the next run."
        ) from None
    kind = sniff(part)
    try:
        reject_non_data(part, raw.what, kind)
        sha256, md5 = hash_file(part)
        _check_pins(raw, part, sha256, md5)
    except DataError:
        part.unlink(missing_ok=True)  # never keep a wrong download around to be resumed
        raise
    os.replace(part, dest)
    row = Ledger(ledger).record(dest, sha256, md5)
    if not raw.pins():
        log.warning(
            "%s: downloaded, sha256 %s. Pin it in the config: %s.sha256: %s", raw.what, sha256, raw.config_key, sha256
        )
    log.info("downloaded %s (%s, %.1f MB)", dest, kind, row["size"] / 1e6)
    return row
