"""The sd_notify client against a real AF_UNIX datagram socket (path and abstract)."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.notify import Notifier


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    yield str(path), sock
    sock.close()


def recv(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def test_messages_reach_the_socket(server):
    address, sock = server
    with Notifier.from_env({"NOTIFY_SOCKET": address}) as n:
        assert n.enabled
        assert n.ready()
        assert recv(sock) == "READY=1"
        assert n.status("restoring  IMG_1234.HEIC\n(3 queued)")
        assert recv(sock) == "STATUS=restoring IMG_1234.HEIC (3 queued)"
        n.watchdog()
        assert recv(sock) == "WATCHDOG=1"
        n.extend_timeout(90.5)
        assert recv(sock) == "EXTEND_TIMEOUT_USEC=90500000"
        n.stopping("finishing job 7")
        assert recv(sock) == "STOPPING=1\nSTATUS=finishing job 7"
        n.ready(status="idle")
        assert recv(sock) == "READY=1\nSTATUS=idle"


def test_abstract_socket():
    name = f"lmd-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(2)
    try:
        n = Notifier.from_env({"NOTIFY_SOCKET": "@" + name})
        assert n.watchdog()
        assert recv(sock) == "WATCHDOG=1"
        n.close()
    finally:
        sock.close()


def test_noop_without_socket_and_survives_a_dead_socket(tmp_path):
    n = Notifier.from_env({})
    assert not n.enabled
    assert not n.ready()
    assert n.watchdog_interval() is None
    dead = Notifier.from_env({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert dead.ready() is False  # logged, never raised


def test_watchdog_interval_respects_pid():
    env = {"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "30000000"}
    assert Notifier.from_env(env).watchdog_interval() == 15.0
    mine = {**env, "WATCHDOG_PID": str(os.getpid())}
    assert Notifier.from_env(mine).watchdog_interval() == 15.0
    other = {**env, "WATCHDOG_PID": str(os.getpid() + 1)}
    assert Notifier.from_env(other).watchdog_interval() is None
    assert Notifier.from_env({**env, "WATCHDOG_USEC": "junk"}).watchdog_interval() is None


def test_unset_removes_variables(server, monkeypatch):
    address, sock = server
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    n = Notifier.from_env(unset=True)
    assert "NOTIFY_SOCKET" not in os.environ
    assert "WATCHDOG_USEC" not in os.environ
    assert n.ready()
    assert recv(sock) == "READY=1"
    assert n.watchdog_interval() == 0.5
