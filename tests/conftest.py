import os
import socket

import pytest
import yaml

from workflow_helpers import copy_run, snakemake, tiny_config

# Tests never use more than the job's share of the 2 CI cores, nor the network.
os.environ.setdefault("OMP_NUM_THREADS", "1")


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


# The tiny demo pipeline, built once per session and shared by the end-to-end modules (each of its
# runs costs minutes on 2 cores). Both fixtures are read only: copy_run() before changing anything.
@pytest.fixture(scope="session")
def tiny_standin(tmp_path_factory):
    """tiny_config's demo data and its trained stand-in SOD model (train_standin_sod), nothing else."""
    work = tmp_path_factory.mktemp("tiny_standin")
    config = tiny_config()
    (work / "tiny.yaml").write_text(yaml.safe_dump(config))
    snakemake(work, f"{config['saliency']['model_home']}/{config['saliency']['model']}.onnx")
    return work


@pytest.fixture(scope="session")
def tiny_run(tiny_standin, tmp_path_factory):
    """The whole tiny_config pipeline, finished (built on tiny_standin)."""
    work = copy_run(tiny_standin, tmp_path_factory.getbasetemp() / "tiny_run")
    snakemake(work)
    return work
