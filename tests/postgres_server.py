"""A throwaway PostgreSQL server for the test run (and `bench/queue.py`).

It runs Debian's PostgreSQL binaries in a temporary directory, listening only on 127.0.0.1 on a
free port (its unix socket in that directory too), with `trust` auth and fsync off: nothing in
it outlives the run. initdb refuses to run as root, so as root the server runs as the `postgres`
system user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

REQUIRE_ENV = "LMD_REQUIRE_POSTGRES"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL binaries here (or the server would not start)."""


def find_bindir() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True
            ).stdout.strip()
            candidates.append(out)
        except (OSError, subprocess.CalledProcessError):
            pass
    for bindir in candidates:
        path = Path(bindir)
        if (path / "initdb").is_file() and (path / "pg_ctl").is_file():
            return path
    return None


def _version_key(path: str) -> float:
    try:
        return float(Path(path).parent.name)
    except ValueError:
        return 0.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    """Start with `start()`, get URLs from `url(dbname)` / `create_database()`, `stop()`."""

    def __init__(self, bindir: Path | None = None) -> None:
        found = bindir or find_bindir()
        if found is None:
            raise PostgresUnavailable(
                "PostgreSQL server binaries not found (looked in /usr/lib/postgresql/*/bin and "
                "`pg_config --bindir`); install Debian's postgresql package"
            )
        self.bindir = found
        self.port = _free_port()
        self.tmp = Path(tempfile.mkdtemp(prefix="lmd-pg-"))
        self.datadir = self.tmp / "data"
        self.user: str | None = None
        if os.geteuid() == 0:
            self.user = "postgres"
            pw = pwd.getpwnam(self.user)
            os.chown(self.tmp, pw.pw_uid, pw.pw_gid)
        self.started = False

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if self.user is not None:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, cwd=self.tmp)

    def start(self) -> PostgresServer:
        init = self._run(
            str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", "postgres",
            "--auth=trust", "--encoding=UTF8", "--no-sync", "--no-instructions",
        )
        if init.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {init.stderr.strip() or init.stdout}")
        opts = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.tmp} -F "
            "-c full_page_writes=off -c synchronous_commit=off -c max_connections=100"
        )
        started = self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-o", opts,
            "-l", str(self.tmp / "server.log"), "-w", "-t", "60", "start",
        )
        if started.returncode != 0:
            log = (self.tmp / "server.log").read_text(errors="replace")[-2000:]
            raise PostgresUnavailable(f"pg_ctl start failed: {started.stderr.strip()}\n{log}")
        self.started = True
        return self

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, prefix: str = "t") -> str:
        """A fresh empty database; returns its SQLAlchemy URL."""
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self.started:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate",
                      "-w", "stop")
            self.started = False
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                shutil.rmtree(self.tmp)
                break
            except OSError:
                time.sleep(0.1)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
