import numpy as np
import pytest

from fashion_rembg.atomic import atomic_npy


def test_written_only_on_success(tmp_path):
    out = tmp_path / "sub" / "a.npy"
    with atomic_npy(out, (3, 2)) as arr:
        arr[:] = 7
        assert not out.exists()
    assert (np.load(out) == 7).all() and np.load(out).dtype == np.uint8
    assert [p.name for p in out.parent.iterdir()] == ["a.npy"]


def test_failure_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    out = tmp_path / "a.npy"
    np.save(out, np.zeros((1,), dtype=np.uint8))
    with pytest.raises(RuntimeError):
        with atomic_npy(out, (4, 4)) as arr:
            arr[0] = 1
            raise RuntimeError("killed")
    assert np.load(out).shape == (1,)
    assert [p.name for p in tmp_path.iterdir()] == ["a.npy"]


def test_empty_shape(tmp_path):
    out = tmp_path / "e.npy"
    with atomic_npy(out, (0, 5, 5)):
        pass
    assert np.load(out).shape == (0, 5, 5)
