"""Archives are recognised by content and extracted safely: every unsafe member refuses the whole
archive with a clear error, and nothing is ever written outside the target directory."""
import io
import os
import stat
import tarfile
import zipfile

import pytest

from fashion_rembg.datasets.archives import SENTINEL, find_dir, member_path, safe_extract, sniff
from fashion_rembg.errors import DataError

from raw_fixtures import make_fs14, pack

MB = 10**6


def tar_with(path, members, mode="w"):
    """members: (TarInfo fields dict, bytes or None)."""
    with tarfile.open(path, mode) as tf:
        for fields, data in members:
            info = tarfile.TarInfo(fields.pop("name"))
            for key, value in fields.items():
                setattr(info, key, value)
            if data is not None:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def zip_with(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data, mode in members:
            info = zipfile.ZipInfo(name)
            if mode is not None:
                info.create_system = 3
                info.external_attr = mode << 16
            zf.writestr(info, data)
    return path


def snapshot(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture
def area(tmp_path):
    """A parent folder whose only allowed change is target/ (and its staging sibling, removed after)."""
    (tmp_path / "outside.txt").write_text("keep")
    return tmp_path


@pytest.mark.parametrize("fmt", ["zip", "tar", "tar.gz", "tar.bz2", "tar.xz"])
def test_formats_are_recognised_by_content_whatever_the_name(tmp_path, fmt):
    src = make_fs14(tmp_path / "src" / "FashionStyle14_v1", per_split=("train",), bad_cases=False)
    archive = pack(src, tmp_path / "FashionStyle14_v1.zip.download", fmt)  # the name says nothing
    assert sniff(archive) == fmt
    summary = safe_extract(archive, tmp_path / "out", 10 * MB)
    assert summary["format"] == fmt and summary["files"] == 14 + 3
    assert find_dir(tmp_path / "out", lambda d: (d / "train.csv").is_file(), "root").name == "FashionStyle14_v1"
    assert (tmp_path / "out" / SENTINEL).is_file()
    assert not (tmp_path / ".out.partial").exists()


def test_pointer_html_empty_and_foreign_formats_are_named(tmp_path):
    cases = {"lfs.zip": (b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 9\n", "Git LFS pointer"),
             "page.zip": (b"<!DOCTYPE html><html><body>Sign in</body></html>", "HTML page"),
             "empty.tar": (b"", "empty"),
             "x.7z": (b"7z\xbc\xaf\x27\x1c" + b"\0" * 40, "extract it by hand"),
             "notes.tar": (b"just some text, no archive at all" * 20, "not a zip or tar")}
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(DataError, match=message):
            safe_extract(tmp_path / name, tmp_path / "out", MB)
        assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case, members, message", [
    ("absolute", [({"name": "/tmp/evil.txt"}, b"x")], "absolute path"),
    ("dotdot", [({"name": "FashionStyle14_v1/../../evil.txt"}, b"x")], r"'\.\.'"),
    ("symlink-out", [({"name": "link", "type": tarfile.SYMTYPE, "linkname": "../../etc/passwd"}, None)], "outside"),
    ("symlink-abs", [({"name": "link", "type": tarfile.SYMTYPE, "linkname": "/etc/passwd"}, None)], "absolute"),
    ("hardlink-out", [({"name": "hard", "type": tarfile.LNKTYPE, "linkname": "../outside.txt"}, None)], "outside"),
    ("device", [({"name": "dev", "type": tarfile.CHRTYPE, "devmajor": 1, "devminor": 3}, None)], "device"),
    ("fifo", [({"name": "pipe", "type": tarfile.FIFOTYPE}, None)], "FIFO"),
    ("duplicate", [({"name": "a.txt"}, b"1"), ({"name": "a.txt"}, b"2")], "duplicate"),
    ("bomb", [({"name": "big.bin"}, b"\0" * (2 * MB))], "refusing to extract more than"),
])
def test_unsafe_tar_members_refuse_the_archive(area, case, members, message):
    archive = tar_with(area / f"{case}.tar.gz", [({"name": "ok.txt"}, b"fine")] + members, mode="w:gz")
    before = snapshot(area)
    with pytest.raises(DataError, match=message) as err:
        safe_extract(archive, area / "target", MB)
    assert str(archive) in str(err.value)
    assert snapshot(area) == before, "nothing written (target, staging or outside)"
    assert (area / "outside.txt").read_text() == "keep"


def test_unsafe_zip_members_refuse_the_archive(area):
    cases = {
        "slip": ([("../../evil.txt", b"x", None)], "'..'"),
        "backslash": ([("..\\..\\evil.txt", b"x", None)], "'..'"),
        "drive": ([("C:/evil.txt", b"x", None)], "absolute"),
        "symlink": ([("link", b"../../etc/passwd", stat.S_IFLNK | 0o777)], "outside"),
        "fifo": ([("pipe", b"", stat.S_IFIFO | 0o644)], "special file"),
        "bomb": ([("big.bin", b"\0" * (2 * MB), None)], "declares"),
    }
    for case, (members, message) in cases.items():
        archive = zip_with(area / f"{case}.zip", [("ok.txt", b"fine", None)] + members)
        before = snapshot(area)
        with pytest.raises(DataError, match=message):
            safe_extract(archive, area / "target", MB)
        assert snapshot(area) == before, case


def test_links_inside_are_copied_not_created(tmp_path):
    archive = tar_with(tmp_path / "links.tar", [
        ({"name": "d/a.txt"}, b"hello"),
        ({"name": "d/sym", "type": tarfile.SYMTYPE, "linkname": "a.txt"}, None),
        ({"name": "d/hard", "type": tarfile.LNKTYPE, "linkname": "d/a.txt"}, None),
    ])
    summary = safe_extract(archive, tmp_path / "out", MB)
    assert summary["links_copied"] == 2
    for name in ("sym", "hard"):
        path = tmp_path / "out" / "d" / name
        assert not path.is_symlink() and path.read_bytes() == b"hello"


def test_refuses_to_replace_a_folder_it_did_not_make(tmp_path):
    archive = tar_with(tmp_path / "a.tar", [({"name": "x.txt"}, b"1")])
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "precious.txt").write_text("user data")
    with pytest.raises(DataError, match="not made by this pipeline"):
        safe_extract(archive, tmp_path / "mine", MB)
    assert (tmp_path / "mine" / "precious.txt").read_text() == "user data"
    safe_extract(archive, tmp_path / "ours", MB)
    safe_extract(tar_with(tmp_path / "b.tar", [({"name": "y.txt"}, b"2")]), tmp_path / "ours", MB)
    assert sorted(os.listdir(tmp_path / "ours")) == sorted([SENTINEL, "y.txt"]), "re-extraction replaces"


def test_truncated_archive_is_a_clear_error(tmp_path):
    src = make_fs14(tmp_path / "src" / "FashionStyle14_v1", per_split=("train",), bad_cases=False)
    archive = pack(src, tmp_path / "fs14.tar.gz", "tar.gz")
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="broken tar.gz archive"):
        safe_extract(archive, tmp_path / "out", 10 * MB)
    assert not (tmp_path / "out").exists() and not (tmp_path / ".out.partial").exists()


def test_member_path_normalisation():
    assert member_path("./FashionStyle14_v1//dataset/a.jpg") == "FashionStyle14_v1/dataset/a.jpg"
    for bad in ["/abs", "a/../../b", "..", "C:\\x", "a\\..\\..\\b"]:
        with pytest.raises(DataError):
            member_path(bad)


def test_tar_cut_between_members_is_a_clear_error(tmp_path):
    """tarfile reads a header cut short as the end of the archive: a download cut exactly between two
    members must fail, not extract the members before the cut (the cut-in-half test passed or failed
    by where the half fell)."""
    src = make_fs14(tmp_path / "src" / "FashionStyle14_v1", per_split=("train",), bad_cases=False)
    data = pack(src, tmp_path / "fs14.tar", "tar").read_bytes()
    with tarfile.open(tmp_path / "fs14.tar") as tf:
        boundaries = [member.offset for member in tf.getmembers()][1:]
    assert len(boundaries) > 5
    for i, cut in enumerate(boundaries + [len(data) - 10240]):  # each header, and the end blocks removed
        archive = tmp_path / f"cut{i}.tar"
        archive.write_bytes(data[:cut])
        with pytest.raises(DataError, match="broken tar archive"):
            safe_extract(archive, tmp_path / f"out{i}", 10 * MB)
        assert not (tmp_path / f"out{i}").exists()


@pytest.mark.parametrize("fmt", ["tar.gz", "tar.bz2", "tar.xz"])
def test_compressed_tar_cut_anywhere_is_a_clear_error(tmp_path, fmt):
    src = make_fs14(tmp_path / "src" / "FashionStyle14_v1", per_split=("train",), bad_cases=False)
    data = pack(src, tmp_path / f"fs14.{fmt}", fmt).read_bytes()
    assert safe_extract(tmp_path / f"fs14.{fmt}", tmp_path / "whole", 10 * MB)["files"] > 5
    for i, cut in enumerate([len(data) * k // 8 for k in range(1, 8)] + [len(data) - 4]):
        archive = tmp_path / f"cut{i}.{fmt}"
        archive.write_bytes(data[:cut])
        with pytest.raises(DataError, match=f"broken {fmt} archive"):
            safe_extract(archive, tmp_path / f"out{i}", 10 * MB)
