import fcntl
import os
import shutil
import socket
from pathlib import Path

import pytest
import yaml

from workflow_helpers import copy_run, snakemake, tiny_config

# Tests never use more than the job's share of the 2 CI cores, nor the network.
os.environ.setdefault("OMP_NUM_THREADS", "1")

# pytest-xdist (addopts: -n 2 --dist loadfile) runs each file on one worker, files in this order, the
# slowest first so that neither worker is left with a long one at the end; the rest keep their order.
SLOW_FIRST = [
    "test_controls_e2e.py",
    "test_hostile_inputs.py",
    "test_instance_workflow.py",
    "test_workflow_e2e.py",
    "test_own_data.py",
    "test_fetch_workflow.py",
    "test_models.py",
    "test_fidelity_workflow.py",
    "test_saliency_workflow.py",
]


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file's own order is kept


@pytest.fixture
def no_network(monkeypatch):
    """Every socket connection attempt fails and is recorded (tests must not need the network)."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


def built_once(tmp_path_factory, name: str, build) -> Path:
    """`build(path)` (which makes the folder `path`) once per test session, also across pytest-xdist
    workers: the first to get here builds in their common temporary folder under a file lock, the
    others wait for it and reuse what it built."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the session's folder, above each worker's own
    path, failed = root / name, root / f"{name}.failed"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        if failed.is_file():
            raise RuntimeError(f"building {name} failed (in another worker):\n{failed.read_text()}")
        if not (root / f"{name}.done").is_file():
            shutil.rmtree(path, ignore_errors=True)
            try:
                build(path)
            except BaseException as error:
                failed.write_text(str(error))
                raise
            (root / f"{name}.done").touch()
    return path


# The tiny demo pipeline, built once per session and shared by the end-to-end modules (each of its
# runs costs minutes on 2 cores). Both fixtures are read only: copy_run() before changing anything.
@pytest.fixture(scope="session")
def tiny_standin(tmp_path_factory):
    """tiny_config's demo data and its trained stand-in SOD model (train_standin_sod), nothing else."""

    def build(work):
        work.mkdir()
        config = tiny_config()
        (work / "tiny.yaml").write_text(yaml.safe_dump(config))
        snakemake(work, f"{config['saliency']['model_home']}/{config['saliency']['model']}.onnx")

    return built_once(tmp_path_factory, "tiny_standin", build)


@pytest.fixture(scope="session")
def tiny_run(tiny_standin, tmp_path_factory):
    """The whole tiny_config pipeline, finished (built on tiny_standin)."""

    def build(work):
        copy_run(tiny_standin, work)
        snakemake(work)

    return built_once(tmp_path_factory, "tiny_run", build)
