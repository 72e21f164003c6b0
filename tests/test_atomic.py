"""fashion_rembg.atomic: every writer's bytes are fixed, and a failed write leaves the old file and no temp."""
import errno
import io
import json

import numpy as np
import pandas as pd
import pytest

from fashion_rembg import atomic
from fashion_rembg.errors import PipelineError


def test_json_bytes_sorted_indented_and_strict(tmp_path):
    out = tmp_path / "a" / "m.json"
    atomic.write_json(out, {"b": np.float32(0.5), "a": [np.int64(1)], "p": tmp_path})
    assert out.read_bytes() == (json.dumps({"a": [1], "b": 0.5, "p": str(tmp_path)}, indent=2, sort_keys=True)
                                + "\n").encode()
    with pytest.raises(ValueError):
        atomic.write_json(out, {"x": float("nan")})
    assert json.loads(out.read_text())["b"] == 0.5  # the refused write left the old file
    atomic.write_json(out, {"x": float("nan")}, allow_nan=True)
    assert out.read_text() == '{\n  "x": NaN\n}\n'
    assert sorted(p.name for p in out.parent.iterdir()) == ["m.json"]


def test_csv_and_tsv_use_newline_endings(tmp_path):
    atomic.write_csv(tmp_path / "h.csv", [{"a": 1, "b": "x,y"}], ["a", "b"])
    assert (tmp_path / "h.csv").read_bytes() == b'a,b\n1,"x,y"\n'
    atomic.write_csv(tmp_path / "h.tsv", [{"a": 1, "b": 2}], ["a", "b"], delimiter="\t")
    assert (tmp_path / "h.tsv").read_bytes() == b"a\tb\n1\t2\n"
    table = pd.DataFrame({"index": [0, 1], "label": ["", "é"]})
    atomic.write_tsv(tmp_path / "m.tsv", table)
    assert (tmp_path / "m.tsv").read_bytes() == "index\tlabel\n0\t\n1\té\n".encode()


def test_npy_npz_and_torch_load_back(tmp_path):
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)[:, ::2]  # not contiguous
    atomic.save_npy(tmp_path / "m.npy", arr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npy"]  # no ".npy" appended to the temp name
    np.testing.assert_array_equal(np.load(tmp_path / "m.npy"), arr)
    atomic.save_npz(tmp_path / "p.npz", b=arr, a=np.zeros(2))
    with np.load(tmp_path / "p.npz") as z:
        assert z.files == ["b", "a"]
    torch = pytest.importorskip("torch")
    atomic.save_torch(tmp_path / "t.pt", {"w": torch.ones(2)})
    assert torch.equal(torch.load(tmp_path / "t.pt", weights_only=True)["w"], torch.ones(2))
    buf = io.BytesIO()
    torch.save({"w": torch.ones(2)}, buf)
    assert (tmp_path / "t.pt").read_bytes() == buf.getvalue()


def test_failed_block_keeps_old_file_and_no_temp(tmp_path):
    out = tmp_path / "f.txt"
    atomic.write_text(out, "old\n")
    with pytest.raises(RuntimeError):
        with atomic.atomic_file(out) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert out.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]


@pytest.mark.parametrize("code, words", [(errno.ENOSPC, "disk full while writing"), (errno.EROFS, "cannot write")])
def test_disk_faults_name_the_file(tmp_path, monkeypatch, code, words):
    import os

    def failing_replace(src, dst):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(atomic.os, "replace", failing_replace)
    with pytest.raises(PipelineError, match=words) as caught:
        atomic.write_bytes(tmp_path / "x.bin", b"123")
    assert str(tmp_path / "x.bin") in str(caught.value)
    assert list(tmp_path.iterdir()) == []
