"""The queue commands through the real console entry point (the `lmd` script): exit codes
0 / 1 / 2, messages, and never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from daemon.cli import main
from daemon.store import open_store
from tests.foundation.lmd_entry import flat, lmd_command
from tests.store.store_helpers import make_spec

ROOT = Path(__file__).resolve().parents[2]
Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def lmd(tmp_path: Path) -> tuple[str, Run]:
    url = f"sqlite:///{tmp_path / 'state' / 'lmd.sqlite3'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LMD_")}
    env.update(LMD_STATE_DIR=str(tmp_path / "state"), LMD_DATABASE_URL=url, PYTHONPATH=str(ROOT))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*lmd_command(), *args], cwd=tmp_path, env=env,
            capture_output=True, text=True, timeout=120,
        )

    return url, run


def test_exit_codes_and_messages(lmd: tuple[str, Run]) -> None:
    url, run = lmd
    with open_store(url) as store:
        job_id = store.enqueue(make_spec()).job_id

    ok = run("status", "--json")
    assert ok.returncode == 0, ok.stderr
    data = json.loads(ok.stdout)
    assert {"jobs", "failures", "last_scan", "worker", "restorer"} <= set(data)
    assert data["jobs"]["pending"] == 1

    missing = run("jobs", "show", "999")
    assert missing.returncode == 1 and "job 999 does not exist" in missing.stderr
    pending = run("jobs", "retry", str(job_id))
    assert pending.returncode == 1 and "only failed, cancelled or skipped" in pending.stderr

    for args, option in (
        (("reprocess", "--since", "99999999d"), "--since"),
        (("reprocess", "--since", "1d", "--until", "0001-01-01T00:00+05:00"), "--until"),
        (("reprocess", "--since", "9" * 400 + "d"), "--since"),
    ):
        usage = run(*args)
        assert usage.returncode == 2, usage.stderr
        assert "Traceback" not in usage.stderr and option in usage.stderr

    dry = run("reprocess", "--since", "1d", "--dry-run")
    assert dry.returncode == 0 and "would re-queue 0 job(s)" in dry.stdout


def test_retry_of_a_superseded_job_says_which_job_replaced_it(lmd: tuple[str, Run]) -> None:
    url, run = lmd
    with open_store(url) as store:
        old = store.enqueue(make_spec(content="v1")).job_id
        new = store.enqueue(make_spec(content="v2")).job_id
    done = run("jobs", "retry", str(old))
    assert done.returncode == 1
    assert f"superseded by job {new}" in " ".join(done.stderr.split())


def test_a_corrupt_database_file_is_exit_code_one(tmp_path: Path, lmd: tuple[str, Run]) -> None:
    url, run = lmd
    path = Path(url.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x00garbage" * 64)
    done = run("status")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "file is not a database" in " ".join(done.stderr.split())


HUGE = "99999999999999999999"  # beyond SQLite's and PostgreSQL's integers


@pytest.mark.parametrize(
    "args",
    [("jobs", "show", HUGE), ("jobs", "list", "--limit", HUGE)],
)
def test_numbers_beyond_the_store_are_usage_errors(lmd: tuple[str, Run], args) -> None:
    done = lmd[1](*args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "2147483647" in done.stderr


@pytest.mark.parametrize(
    "args",
    [("jobs", "retry", HUGE), ("jobs", "cancel", HUGE), ("jobs", "show", "0")],
)
def test_numbers_beyond_the_store_in_process(args, capsys) -> None:
    assert main(list(args)) == 2
    assert "Invalid value for 'job_id'" in flat(capsys.readouterr().err)
