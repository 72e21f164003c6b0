"""Recognise downloaded files by content and extract archives safely.

Safety rules (an archive breaking one is refused as a whole, with the member named):
absolute paths, drive letters and `..` components; symbolic or hard links whose target leaves the
target directory; device files, FIFOs and sockets; duplicate file members; more than `max_bytes`
of content (zip/tar bombs, checked against the headers *and* while writing). Members are written
into a fresh staging folder inside the extraction directory with exclusive creation, and links are
never created (a link that stays inside is materialised as a copy of a member already written),
so nothing can reach outside it; the staging folder is renamed into place only when all went well.
"""
from __future__ import annotations

import bz2
import errno
import gzip
import json
import logging
import lzma
import os
import posixpath
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path

from ..errors import DataError

log = logging.getLogger(__name__)

LFS_POINTER_PREFIX = b"version https://git-lfs.github.com/spec/v1"
SENTINEL = ".fashion-rembg-extracted"  # marks folders this module made (and may therefore replace)
CHUNK = 1 << 20

__all__ = ["LFS_POINTER_PREFIX", "sniff", "reject_non_data", "safe_extract", "find_dir", "member_path",
           "relative_path", "path_inside", "check_inside"]


# Leading bytes → file type, checked in order.
MAGIC = (
    (LFS_POINTER_PREFIX, "lfs-pointer"),
    (b"PK\x03\x04", "zip"), (b"PK\x05\x06", "zip"), (b"PK\x07\x08", "zip"),
    (b"\x1f\x8b", "tar.gz"),
    (b"BZh", "tar.bz2"),
    (b"\xfd7zXZ\x00", "tar.xz"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"Rar!", "rar"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)  # fmt: skip


def sniff(path: Path) -> str:
    """File type from its first bytes: zip, tar, tar.gz, tar.bz2, tar.xz, json, lfs-pointer, html,
    empty, 7z, rar, zstd or unknown. File names are not trusted (a .zip may be a tar)."""
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(512)
    if not head:
        return "empty"
    for magic, kind in MAGIC:
        if head.startswith(magic):
            return kind
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if stripped.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head")):
        return "html"
    if stripped[:1] in (b"{", b"["):
        return "json"
    if tarfile.is_tarfile(path):  # old (v7) tar without the ustar magic
        return "tar"
    return "unknown"


def reject_non_data(path: Path, what: str, kind: str | None = None) -> str:
    """Raise a DataError for files that are clearly not the dataset (pointer, web page, empty)."""
    kind = kind or sniff(path)
    size = Path(path).stat().st_size
    if kind == "lfs-pointer":
        raise DataError(
            f"{what}: {path} is a Git LFS pointer ({size} bytes), not the file itself. A plain `git clone` "
            "without git-lfs leaves such pointers: install git-lfs, run `git lfs pull` in the clone and copy "
            "the real file (or delete this one and let the pipeline download it)."
        )
    if kind == "html":
        raise DataError(
            f"{what}: {path} is an HTML page ({size} bytes), not the file: the download URL needs a login or "
            "has moved. Delete it, download the file in a browser and place it there."
        )
    if kind == "empty":
        raise DataError(f"{what}: {path} is empty (0 bytes); delete it and download it again.")
    return kind


def member_path(name: str) -> str:
    """Validated, normalised relative POSIX path of an archive member, or DataError."""
    raw = name
    name = name.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise DataError(f"absolute path {raw!r}")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise DataError(f"'..' in member path {raw!r}")
    if any("\x00" in p for p in parts):
        raise DataError(f"NUL byte in member path {raw!r}")
    return "/".join(parts)


def check_inside(root: Path, path: Path, shown: str) -> Path:
    """`path` if it still lies inside `root` once symbolic links are followed; DataError otherwise."""
    real, real_root = Path(path).resolve(), Path(root).resolve()
    if real != real_root and not real.is_relative_to(real_root):
        raise DataError(f"path {shown!r} leads outside {root} (via a symbolic link, to {real})")
    return Path(path)


def relative_path(relative, what: str = "path") -> str:
    """Normalised relative POSIX path read from a data file (COCO file_name, split list row), or
    DataError saying why it may not be used: not text, empty, absolute, `..` or NUL."""
    if not isinstance(relative, str) or not relative.strip():
        raise DataError(f"{what} {relative!r} is empty or not text")
    try:
        cleaned = member_path(relative)
    except DataError as err:
        raise DataError(f"{what} refused: {err}; it must be a path inside the dataset folder") from None
    if not cleaned:
        raise DataError(f"{what} {relative!r} names no file")
    return cleaned


def path_inside(root: Path, relative, what: str = "path") -> Path:
    """`root/relative` when it stays inside `root` (also through symbolic links), else DataError:
    raw data is never read from outside its folder."""
    return check_inside(root, Path(root) / relative_path(relative, what), relative)


def _link_target(member: str, target: str, hard: bool) -> str:
    """Where a link member points, relative to the extraction root; DataError if outside."""
    target = target.replace("\\", "/")
    if target.startswith("/") or (len(target) > 1 and target[1] == ":"):
        raise DataError(f"link {member!r} points to absolute path {target!r}")
    base = "" if hard else posixpath.dirname(member)
    resolved = posixpath.normpath(posixpath.join(base, target))
    if resolved == ".." or resolved.startswith("../"):
        raise DataError(f"link {member!r} points outside the target directory ({target!r})")
    return resolved


class _Budget:
    def __init__(self, archive: Path, max_bytes: int):
        self.archive, self.max_bytes, self.used = archive, max_bytes, 0

    def add(self, n: int, member: str, commit: bool = True) -> None:
        if self.used + n > self.max_bytes:
            raise DataError(
                f"{self.archive}: refusing to extract more than {self.max_bytes:,} bytes (reached at member "
                f"{member!r}); this is not the expected archive, or raise the limit (max_gb) in the config."
            )
        if commit:
            self.used += n


def _write_member(src, dest: Path, declared: int, member: str, budget: _Budget) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with open(dest, "xb") as out:  # exclusive: never follow or overwrite anything
        while chunk := src.read(CHUNK):
            written += len(chunk)
            if written > declared:
                raise DataError(f"member {member!r} holds more data than its header declares ({declared} bytes)")
            budget.add(len(chunk), member)
            out.write(chunk)


def _copy_inside(staging: Path, member: str, resolved: str, written: set[str]) -> bool:
    if resolved not in written:
        log.warning("link %s → %s: target is not a file extracted before it; skipped", member, resolved)
        return False
    dest = staging / member
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(staging / resolved, dest)
    return True


def _extract_zip(archive: Path, staging: Path, budget: _Budget) -> dict:
    counts = {"files": 0, "links_copied": 0}
    written: set[str] = set()
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        declared = sum(i.file_size for i in infos)
        if declared > budget.max_bytes:
            raise DataError(
                f"{archive}: declares {declared:,} bytes of content, more than the limit {budget.max_bytes:,} "
                "(zip bomb, or the limit max_gb in the config is too low)"
            )
        _check_space(staging, declared, archive)
        for info in infos:
            try:
                name = member_path(info.filename)
                mode = info.external_attr >> 16
                kind = stat.S_IFMT(mode) if info.create_system == 3 and mode else 0
                if info.is_dir() or not name:
                    if name:
                        (staging / name).mkdir(parents=True, exist_ok=True)
                    continue
                if kind == stat.S_IFLNK:
                    target = zf.read(info).decode("utf-8", "replace")
                    resolved = _link_target(name, target, hard=False)
                    counts["links_copied"] += _copy_inside(staging, name, resolved, written)
                    continue
                if kind and kind != stat.S_IFREG:
                    raise DataError(f"special file (mode {oct(mode)}) {info.filename!r}")
                if name in written:
                    raise DataError(f"duplicate member {info.filename!r}")
                with zf.open(info) as src:
                    _write_member(src, staging / name, info.file_size, name, budget)
            except DataError as err:
                raise DataError(f"{archive}: unsafe or broken archive, nothing extracted: {err}") from None
            except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError) as err:
                raise DataError(f"{archive}: broken zip member {info.filename!r} ({err})") from None
            written.add(name)
            counts["files"] += 1
    return counts


def _extract_tar(archive: Path, staging: Path, budget: _Budget, kind: str) -> dict:
    counts = {"files": 0, "links_copied": 0}
    written: set[str] = set()
    if kind == "tar":
        _check_space(staging, archive.stat().st_size, archive)
    try:
        # Streaming, one pass. The stdlib readers decompress: unlike tarfile's own, they raise EOFError
        # when the compressed stream is cut short.
        with _TAR_READERS[kind](archive, "rb") as raw, tarfile.open(fileobj=raw, mode="r|") as tf:
            for member in tf:
                try:
                    name = member_path(member.name)
                    if member.isdir() or not name:
                        if name:
                            (staging / name).mkdir(parents=True, exist_ok=True)
                        continue
                    if member.issym() or member.islnk():
                        resolved = _link_target(name, member.linkname, hard=member.islnk())
                        counts["links_copied"] += _copy_inside(staging, name, resolved, written)
                        continue
                    if not member.isreg():
                        raise DataError(f"device file, FIFO or other special member {member.name!r}")
                    if name in written:
                        raise DataError(f"duplicate member {member.name!r}")
                    budget.add(member.size, name, commit=False)  # refuse on the header, before writing
                    src = tf.extractfile(member)
                    _write_member(src, staging / name, member.size, name, budget)
                except DataError as err:
                    raise DataError(f"{archive}: unsafe or broken archive, nothing extracted: {err}") from None
                written.add(name)
                counts["files"] += 1
            # tarfile takes a header cut short for the end of the archive, so a download cut between two
            # members would extract a subset silently: the end-of-archive block must have been read whole,
            # and the compressed stream must end properly (read to its end).
            if tf.fileobj.pos - tf.offset != tarfile.BLOCKSIZE:
                raise EOFError("the archive ends without its end-of-archive block (cut short?)")
            while raw.read(1 << 20):
                pass
    except (tarfile.TarError, EOFError, OSError) as err:
        if isinstance(err, OSError) and err.errno == errno.ENOSPC:
            raise
        raise DataError(f"{archive}: broken {kind} archive ({type(err).__name__}: {err}); download it again") from None
    return counts


# The tar stream of each tar kind that `sniff` tells apart by its magic bytes.
_TAR_READERS = {"tar": open, "tar.gz": gzip.open, "tar.bz2": bz2.open, "tar.xz": lzma.open}


def _check_space(staging: Path, needed: int, archive: Path) -> None:
    free = shutil.disk_usage(staging).free
    if needed > free:
        raise DataError(
            f"{archive}: extraction needs about {needed / 1e9:.1f} GB but only {free / 1e9:.1f} GB are free "
            f"under {staging.parent}; free space or set downloads.extract_dir to a larger disk."
        )


def safe_extract(archive: Path, target: Path, max_bytes: int) -> dict:
    """Extract `archive` (zip or tar, plain or compressed: detected from its bytes) into `target`.

    `target` is replaced atomically: extraction goes to a sibling staging folder first. An existing
    `target` is only removed when this module made it (sentinel file), never a user's folder.
    Returns a summary (format, files, bytes).
    """
    archive, target = Path(archive), Path(target)
    kind = reject_non_data(archive, "archive")
    if kind in ("7z", "rar", "zstd"):
        raise DataError(
            f"{archive} is a {kind} archive, which Python cannot unpack: extract it by hand and point the "
            "config at the extracted folder instead."
        )
    if kind not in ("zip", "tar", "tar.gz", "tar.bz2", "tar.xz"):
        raise DataError(f"{archive} is not a zip or tar archive (its first bytes say: {kind})")
    if target.exists() and not (target / SENTINEL).exists() and any(target.iterdir()):
        raise DataError(
            f"{target} exists and was not made by this pipeline; move it away or change downloads.extract_dir"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.partial")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    budget = _Budget(archive, max_bytes)
    try:
        counts = (
            _extract_zip(archive, staging, budget) if kind == "zip" else _extract_tar(archive, staging, budget, kind)
        )
    except OSError as err:
        shutil.rmtree(staging, ignore_errors=True)
        if err.errno == errno.ENOSPC:
            raise DataError(
                f"{archive}: disk full while extracting into {staging.parent}; free space and rerun"
            ) from None
        raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    (staging / SENTINEL).write_text(json.dumps({"archive": str(archive)}) + "\n")
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)
    summary = {"archive": str(archive), "format": kind, "bytes": budget.used, **counts}
    log.info("extracted %s", summary)
    return summary


def find_dir(base: Path, has, what: str, depth: int = 3) -> Path:
    """The shallowest folder under `base` (itself included) for which `has(folder)` holds."""
    base = Path(base)
    level = [base]
    for _ in range(depth + 1):
        for folder in sorted(level):
            if has(folder):
                return folder
        level = [p for f in level if f.is_dir() for p in f.iterdir() if p.is_dir() and not p.name.startswith(".")]
    top = sorted(p.name for p in base.iterdir()) if base.is_dir() else []
    raise DataError(f"{base}: no {what} found within {depth} folder levels (top level holds: {top[:20]})")
