"""Downloads and checksums: file:// and a local HTTP server stand in for the network (tests never
download). Covers pins, first-use records, pointer/HTML/offline failures, resume, and the start-up
plan that decides what to fetch, extract or reuse."""
import copy
import hashlib
import http.server
import json
import threading
from pathlib import Path

import pytest
import yaml

from fashion_rembg.datasets import fetch as fetch_module
from fashion_rembg.datasets.fetch import Ledger, RawFile, download, verify
from fashion_rembg.datasets.sources import check_file, missing_messages, plan, raw_file
from fashion_rembg.errors import DataError
from fashion_rembg.preflight import check_sources

from raw_fixtures import make_fs14, pack

ROOT = Path(__file__).resolve().parents[1]
PAYLOAD = bytes(range(256)) * 4000  # ~1 MB


def sha(data):
    return hashlib.sha256(data).hexdigest()


def paper():
    from snakemake.utils import validate

    config = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    validate(config, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"))
    return config


@pytest.fixture
def published(tmp_path):
    src = tmp_path / "server" / "file.bin"
    src.parent.mkdir()
    src.write_bytes(PAYLOAD)
    return src


def raw(path, url=None, **pins):
    return RawFile("fashionpedia", "train_images", str(path), url=url, name="train2020.zip",
                   where="https://example.org/fashionpedia", label="Fashionpedia train images", managed=True, **pins)


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD, honouring `Range: bytes=N-` like S3 does."""

    def do_GET(self):  # noqa: N802 (http.server API)
        start = int(self.headers.get("Range", "bytes=0-")[6:].rstrip("-") or 0)
        # Recorded before answering: the client may finish (and the test look) before this thread resumes.
        self.server.requests.append(start)
        body = PAYLOAD[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_url():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/train2020.zip", server.requests
    server.shutdown()


def test_download_checks_pins_and_records_the_hash(tmp_path, published):
    dest, ledger = tmp_path / "raw" / "train2020.zip", tmp_path / "checksums.tsv"
    row = download(raw(dest, published.as_uri(), sha256=sha(PAYLOAD)), dest, ledger)
    assert dest.read_bytes() == PAYLOAD and row["sha256"] == sha(PAYLOAD)
    assert Ledger(ledger).lookup(dest, dest.stat().st_size, dest.stat().st_mtime_ns)["md5"] == \
        hashlib.md5(PAYLOAD).hexdigest()
    wrong = tmp_path / "raw" / "other.zip"
    with pytest.raises(DataError, match="expected 0{64}") as err:
        download(raw(wrong, published.as_uri(), sha256="0" * 64), wrong, ledger)
    assert "delete it and rerun" in str(err.value)
    assert not wrong.exists() and not wrong.with_name("other.zip.part").exists(), "no wrong file kept"


def test_download_resumes_a_partial_file(tmp_path, http_url):
    url, requests = http_url
    dest = tmp_path / "train2020.zip"
    dest.with_name("train2020.zip.part").write_bytes(PAYLOAD[:300_000])
    download(raw(dest, url, sha256=sha(PAYLOAD)), dest, tmp_path / "ledger.tsv")
    assert dest.read_bytes() == PAYLOAD and requests == [300_000]


def test_download_refuses_pointer_and_html_pages(tmp_path):
    pointer = b"version https://git-lfs.github.com/spec/v1\noid sha256:b8a3\nsize 105924292\n"
    for name, body, message in [("pointer", pointer, "Git LFS pointer"),
                                ("page", b"<!doctype html><title>Access denied</title>", "HTML page")]:
        served = tmp_path / f"{name}.served"
        served.write_bytes(body)
        dest = tmp_path / f"{name}.json"
        with pytest.raises(DataError, match=message):
            download(raw(dest, served.as_uri()), dest, tmp_path / "ledger.tsv")
        assert not dest.exists() and not dest.with_name(dest.name + ".part").exists()


def test_offline_or_no_url_names_file_location_and_source(tmp_path):
    dest = tmp_path / "raw" / "train2020.zip"
    with pytest.raises(DataError) as err:
        download(raw(dest, "http://127.0.0.1:9/train2020.zip", md5="a" * 32), dest, tmp_path / "l.tsv", timeout=5)
    message = str(err.value)
    assert "could not download" in message and str(dest) in message and "offline" in message and "md5" in message
    with pytest.raises(DataError) as err:
        download(raw(dest), dest, tmp_path / "l.tsv")
    message = str(err.value)
    assert "train2020.zip" in message and str(dest) in message and "https://example.org/fashionpedia" in message


def test_first_use_is_recorded_then_changes_are_refused(tmp_path, monkeypatch, caplog):
    path, ledger = tmp_path / "archive.zip", tmp_path / "ledger.tsv"
    path.write_bytes(PAYLOAD)
    spec = raw(path)
    calls = []
    real_hash = fetch_module.hash_file
    monkeypatch.setattr(fetch_module, "hash_file", lambda p: calls.append(p) or real_hash(p))
    with caplog.at_level("WARNING"):
        verify(spec, ledger)
    assert f"datasets.fashionpedia.train_images.sha256: {sha(PAYLOAD)}" in caplog.text
    verify(spec, ledger)
    assert len(calls) == 1, "unchanged file (size, mtime) is not hashed again"
    path.write_bytes(PAYLOAD[::-1])  # same path, other content
    with pytest.raises(DataError, match="changed since its first use"):
        verify(spec, ledger)
    verify(raw(path, sha256=sha(PAYLOAD[::-1])), ledger)  # pinning the new hash accepts it
    with pytest.raises(DataError, match="has sha256"):
        verify(raw(path, sha256=sha(PAYLOAD)), ledger)


def test_placed_annotations_with_wrong_checksum_or_pointer_fail_before_prepare(tmp_path):
    config = paper()
    ann = tmp_path / "modanet2018_instances_train.json"
    config["datasets"]["modanet"]["annotations"]["path"] = str(ann)
    config["downloads"] = {"ledger": str(tmp_path / "ledger.tsv")}
    ann.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:b8a3fd0d\nsize 105924292\n")
    with pytest.raises(DataError, match="Git LFS pointer.*git lfs pull"):
        check_file(config, "modanet", "annotations")
    ann.write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    with pytest.raises(DataError, match="expected b8a3fd0dcfa8d6f209a0cef88cedd76decbf593bf47b4246504f681b7fb625af"):
        check_file(config, "modanet", "annotations")


def workdir_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return paper()


def test_plan_uses_folder_archive_or_finished_extraction(tmp_path, monkeypatch):
    config = workdir_config(tmp_path, monkeypatch)
    first = plan(config)
    assert [r.key for r in first["fashionstyle14"].fetch] == ["archive"]
    assert [e.name for e in first["fashionstyle14"].extract] == ["fashionstyle14"]
    assert first["fashionstyle14"].inputs == {"fashionstyle14": "resources/extracted/fashionstyle14/extracted.json"}
    assert {r.key for r in first["modanet"].fetch} == {"annotations", "lmdb_archive"}
    assert {r.key for r in first["fashionpedia"].fetch} == {"train_annotations", "val_annotations",
                                                           "train_images", "val_images"}
    # archive placed: extracted, not fetched
    src = make_fs14(tmp_path / "src" / "FashionStyle14_v1", per_split=("train",), bad_cases=False)
    archive = pack(src, tmp_path / "resources/raw/fashionstyle14/FashionStyle14_v1.zip", "zip")
    placed = plan(config)["fashionstyle14"]
    assert not placed.fetch and placed.extract and not placed.missing
    # extracted and the archive deleted since: reused, nothing to fetch or extract
    marker = tmp_path / "resources/extracted/fashionstyle14/extracted.json"
    marker.parent.mkdir(parents=True)
    marker.write_text("{}")
    archive.unlink()
    reused = plan(config)["fashionstyle14"]
    assert not reused.fetch and not reused.extract and reused.inputs["fashionstyle14"].endswith("extracted.json")
    # an extracted folder in place wins over everything
    folder = make_fs14(
        tmp_path / "resources/raw/fashionstyle14/FashionStyle14_v1", per_split=("train",), bad_cases=False
    )
    direct = plan(config)["fashionstyle14"]
    assert direct.inputs["fashionstyle14"][0] == "resources/raw/fashionstyle14/FashionStyle14_v1/train.csv"
    assert (folder / "train.csv").is_file() and not direct.extract and not direct.fetch


def test_missing_messages_cover_every_dataset(tmp_path, monkeypatch):
    config = workdir_config(tmp_path, monkeypatch)
    text = "\n".join(check_sources(config))
    for fact in ["resources/raw/fashionstyle14/FashionStyle14_v1.zip", "esslab.jp",
                 "modanet2018_instances_train.json", "96478657d20e322e9d3282c6d73c0c4c",
                 "photos.lmdb.tar", "a404789687fc3906d7d843942c802f53", "resources/extracted/paperdoll",
                 "instances_attributes_train2020.json", "instances_attributes_val2020.json",
                 "train2020.zip", "val_test2020.zip", "no enabled task uses modanet", "u2net.onnx"]:
        assert fact in text, fact
    # plain paths (no download entry) still say what to place where
    plain = copy.deepcopy(config)
    plain["datasets"]["modanet"]["annotations"] = "elsewhere/m.json"
    plain["datasets"]["modanet"]["lmdb_archive"] = None
    text = "\n".join(missing_messages(plain))
    assert "place modanet2018_instances_train.json at elsewhere/m.json" in text
    assert "resources/raw/paperdoll/photos.lmdb/data.mdb" in text and "photos.lmdb.tar" in text
    assert raw_file(plain, "modanet", "annotations").managed is False
