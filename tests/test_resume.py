"""Resume after kill -9: a training killed after epoch k and rerun ends byte-identical to an
uninterrupted run (CPU); a checkpoint of other settings is not resumed."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fashion_rembg.training.classification import train_classifier

from training_helpers import CLS_EXPERIMENT, make_classification_store, train_and_evaluate_cls

TESTS = Path(__file__).resolve().parent
# Dropout (global RNG), RandAugment (per-epoch generator), BN and a cosine schedule all resume.
EXPERIMENT = {**CLS_EXPERIMENT, "epochs": 4, "dropout": 0.3, "augment": "randaugment"}
SHORT = {**EXPERIMENT, "epochs": 2}

DRIVER = """
import os, signal, sys
sys.path.insert(0, {tests!r})
import fashion_rembg.training.checkpoint as checkpoint
from fashion_rembg.training.classification import train_classifier

save = checkpoint.Checkpointer.save

def save_then_die(self, state):
    save(self, state)
    if state.epoch == {kill_after}:
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no atexit: like kill -9

checkpoint.Checkpointer.save = save_then_die
store, out = sys.argv[1], sys.argv[2]
train_classifier(images=f"{{store}}/images.npy", manifest=f"{{store}}/manifest.tsv",
                 classes=f"{{store}}/classes.json", model_out=f"{{out}}/model.pt",
                 history_out=f"{{out}}/history.csv", experiment={experiment!r}, seed=3, threads=1,
                 checkpoint_dir=f"{{out}}/ckpt")
"""


def _kill_after(store: Path, out: Path, epoch: int, experiment: dict = EXPERIMENT) -> None:
    code = DRIVER.format(tests=str(TESTS), kill_after=epoch, experiment=experiment)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", code, str(store), str(out)], capture_output=True, text=True, env=env)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return make_classification_store(tmp_path_factory.mktemp("store"), per_split=(20, 6, 6))


@pytest.fixture(scope="module")
def killed_short(store, tmp_path_factory) -> Path:
    """SHORT killed (kill -9) right after checkpointing epoch 1; tests work on copies (copy_killed)."""
    out = tmp_path_factory.mktemp("killed_short")
    _kill_after(store, out, epoch=1, experiment=SHORT)
    return out


def copy_killed(killed: Path, dest: Path) -> None:
    shutil.copytree(killed, dest, dirs_exist_ok=True)


@pytest.fixture(scope="module")
def fresh_short_history(store, tmp_path_factory) -> bytes:
    """history.csv of SHORT trained uninterrupted, no checkpoint (what a run that starts over writes)."""
    return _fresh_history(store, tmp_path_factory.mktemp("fresh_short"), SHORT)


@pytest.fixture(scope="module")
def reference(store, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference")
    train_and_evaluate_cls(store, out, seed=3, **{k: v for k, v in EXPERIMENT.items() if k in CLS_EXPERIMENT})
    return out


def test_killed_run_resumes_and_matches_uninterrupted_run(store, reference, tmp_path, caplog):
    _kill_after(store, tmp_path, epoch=2)
    ckpt = tmp_path / "ckpt" / "last.pt"
    assert ckpt.is_file() and not (tmp_path / "model.pt").exists()
    assert torch.load(ckpt, weights_only=True)["epoch"] == 2
    assert len((tmp_path / "history.csv").read_text().splitlines()) == 1 + 2

    with caplog.at_level(logging.INFO, logger="fashion_rembg.training"):
        train_and_evaluate_cls(store, tmp_path, seed=3, checkpoint_dir=tmp_path / "ckpt",
                               **{k: v for k, v in EXPERIMENT.items() if k in CLS_EXPERIMENT})  # fmt: skip
    assert "after epoch 2" in caplog.text  # it did resume, not start over
    epochs_trained = [r.getMessage() for r in caplog.records if "train_loss" in r.getMessage()]
    assert len(epochs_trained) == 2  # epochs 3 and 4 only
    for name in ("metrics.json", "history.csv", "predictions.npz"):
        assert (tmp_path / name).read_bytes() == (reference / name).read_bytes(), name
    resumed, uninterrupted = torch.load(tmp_path / "model.pt"), torch.load(reference / "model.pt")
    assert all(torch.equal(resumed["state_dict"][k], v) for k, v in uninterrupted["state_dict"].items())
    assert not ckpt.exists()  # removed once the outputs exist


def test_checkpoint_of_other_settings_is_not_resumed(store, killed_short, tmp_path, caplog):
    copy_killed(killed_short, tmp_path)
    changed = {**SHORT, "lr": 0.02}  # the checkpoint's run, another learning rate
    kwargs = dict(images=store / "images.npy", manifest=store / "manifest.tsv", classes=store / "classes.json",
                  history_out=tmp_path / "history.csv", seed=3, threads=1)  # fmt: skip
    with caplog.at_level(logging.INFO, logger="fashion_rembg.training"):
        train_classifier(
            model_out=tmp_path / "model.pt", experiment=changed, checkpoint_dir=tmp_path / "ckpt", **kwargs
        )
    assert "other settings or inputs" in caplog.text
    fresh = tmp_path / "fresh"
    train_classifier(model_out=fresh / "model.pt", experiment=changed, **{**kwargs, "history_out": fresh / "h.csv"})
    assert (tmp_path / "history.csv").read_bytes() == (fresh / "h.csv").read_bytes()


class _Payload:
    """Unpickling this runs code: writes a marker file (what a planted checkpoint would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def _plant_payload(ckpt: Path, marker: Path) -> None:
    torch.save({"epoch": 2, "state": _Payload(marker)}, ckpt)  # a real torch zip file, payload inside


def _fresh_history(store: Path, out: Path, experiment: dict) -> bytes:
    train_classifier(images=store / "images.npy", manifest=store / "manifest.tsv", classes=store / "classes.json",
                     model_out=out / "model.pt", history_out=out / "h.csv", experiment=experiment, seed=3,
                     threads=1)  # fmt: skip
    return (out / "h.csv").read_bytes()


@pytest.mark.parametrize("forge_sidecar", [False, True], ids=["planted-pt", "planted-pt-and-forged-sidecar"])
def test_planted_checkpoint_never_runs_code(store, killed_short, fresh_short_history, tmp_path, caplog,
                                           forge_sidecar):
    ckpt_dir = tmp_path / "ckpt"
    marker = tmp_path / "marker"
    if forge_sidecar:  # a genuine sidecar of this very job, its hash rewritten to fit the planted file
        copy_killed(killed_short, tmp_path)
        _plant_payload(ckpt_dir / "last.pt", marker)
        meta = json.loads((ckpt_dir / "last.json").read_text())
        planted = (ckpt_dir / "last.pt").read_bytes()
        meta.update(sha256=hashlib.sha256(planted).hexdigest(), bytes=len(planted))
        (ckpt_dir / "last.json").write_text(json.dumps(meta))
    else:
        ckpt_dir.mkdir()
        _plant_payload(ckpt_dir / "last.pt", marker)
    with caplog.at_level(logging.INFO, logger="fashion_rembg.training"):
        train_classifier(images=store / "images.npy", manifest=store / "manifest.tsv", classes=store / "classes.json",
                         model_out=tmp_path / "model.pt", history_out=tmp_path / "history.csv", experiment=SHORT,
                         seed=3, threads=1, checkpoint_dir=ckpt_dir)  # fmt: skip
    assert not marker.exists()  # nothing ran
    assert "not resuming from checkpoint" in caplog.text and "starting over from epoch 1" in caplog.text
    assert (tmp_path / "history.csv").read_bytes() == fresh_short_history
    # The payload is live: the old weights_only=False load would have run it.
    _plant_payload(tmp_path / "probe.pt", marker)
    torch.load(tmp_path / "probe.pt", weights_only=False)
    assert marker.read_text() == "pwned"


def test_checkpoint_modified_after_writing_is_not_resumed(store, killed_short, fresh_short_history, tmp_path, caplog):
    copy_killed(killed_short, tmp_path)
    pt = tmp_path / "ckpt" / "last.pt"
    state = torch.load(pt, weights_only=True)
    state["best_score"] = 99.0  # tampered, still tensors/plain values
    torch.save(state, pt)
    with caplog.at_level(logging.INFO, logger="fashion_rembg.training"):
        train_classifier(images=store / "images.npy", manifest=store / "manifest.tsv", classes=store / "classes.json",
                         model_out=tmp_path / "model.pt", history_out=tmp_path / "history.csv", experiment=SHORT,
                         seed=3, threads=1, checkpoint_dir=tmp_path / "ckpt")  # fmt: skip
    assert "sha256 does not match" in caplog.text or "size differs" in caplog.text
    assert (tmp_path / "history.csv").read_bytes() == fresh_short_history


def test_finished_run_is_reused_only_for_the_same_inputs(store, tmp_path, caplog, monkeypatch):
    """A rerun of a finished job (e.g. its test_on changed, so Snakemake reruns train + test) reuses
    the trained model instead of training again, unless the training inputs changed."""
    kwargs = dict(images=store / "images.npy", manifest=store / "manifest.tsv", classes=store / "classes.json",
                  model_out=tmp_path / "model.pt", history_out=tmp_path / "history.csv",
                  experiment={**EXPERIMENT, "epochs": 2}, seed=3, threads=1,
                  checkpoint_dir=tmp_path / "ckpt")  # fmt: skip
    train_classifier(**kwargs)
    model, history = (tmp_path / "model.pt").read_bytes(), (tmp_path / "history.csv").read_bytes()
    assert not (tmp_path / "ckpt" / "last.pt").exists()  # the resumable state is gone
    assert (tmp_path / "ckpt" / "finished.pt").read_bytes() == model
    (tmp_path / "model.pt").unlink()  # what Snakemake does before it reruns the job
    (tmp_path / "history.csv").unlink()

    import fashion_rembg.training.run as run

    def no_training(*args, **kwargs):
        raise AssertionError("trained again although the finished model fits")

    with monkeypatch.context() as m, caplog.at_level(logging.INFO, logger="fashion_rembg.training"):
        m.setattr(run, "fit", no_training)
        train_classifier(**kwargs)
    assert "reusing the trained model" in caplog.text
    assert (tmp_path / "model.pt").read_bytes() == model and (tmp_path / "history.csv").read_bytes() == history

    # New training inputs (the images rewritten, e.g. new masks): train again, never reuse.
    _shift_mtime(store / "images.npy", +1)
    with monkeypatch.context() as m:
        m.setattr(run, "fit", no_training)
        with pytest.raises(AssertionError, match="trained again"):
            train_classifier(**kwargs)
    # A tampered finished file is not reused either.
    _shift_mtime(store / "images.npy", -1)
    finished = tmp_path / "ckpt" / "finished.pt"
    finished.unlink()
    finished.write_bytes(model[:-1] + bytes([model[-1] ^ 1]))
    with monkeypatch.context() as m:
        m.setattr(run, "fit", no_training)
        with pytest.raises(AssertionError, match="trained again"):
            train_classifier(**kwargs)


def _shift_mtime(path: Path, seconds: int) -> None:
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + seconds * 10**9))


class _State:
    """The part of a TrainState the Checkpointer uses."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def state_dict(self) -> dict:
        from fashion_rembg.training.loop import TRAIN_STATE_KEYS

        return {key: (self.epoch if key == "epoch" else 0) for key in TRAIN_STATE_KEYS}

    def load_state_dict(self, payload: dict) -> None:
        self.epoch = payload["epoch"]


@pytest.mark.parametrize("killed_in", ["write_json", "write_bytes"])
def test_a_kill_while_saving_leaves_a_checkpoint_to_resume(tmp_path, monkeypatch, killed_in):
    """A preempted job can be killed between the sidecar and the .pt write (each atomic on its own):
    whichever it hit, the next attempt resumes, from the epoch before or the new one."""
    import fashion_rembg.training.checkpoint as checkpoint

    saver = checkpoint.Checkpointer(tmp_path, "job")
    saver.save(_State(1))

    def killed(*_args, **_kwargs):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(checkpoint, killed_in, killed)
    with pytest.raises(KeyboardInterrupt):
        saver.save(_State(2))
    monkeypatch.undo()
    state = _State(0)
    assert checkpoint.Checkpointer(tmp_path, "job").restore(state) and state.epoch == 1
    resumed = checkpoint.Checkpointer(tmp_path, "job")
    resumed.restore(_State(0))
    resumed.save(_State(2))
    resumed.save(_State(3))  # the sidecar now vouches for epochs 3 and 2, no longer for 1
    state = _State(0)
    assert checkpoint.Checkpointer(tmp_path, "job").restore(state) and state.epoch == 3
    meta = json.loads((tmp_path / "last.json").read_text())
    assert (meta["epoch"], meta["previous"]["epoch"]) == (3, 2)
