import os
import socket

import pytest

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
