"""Any name the filesystem allows is stored losslessly (issue 11 item 2, store side).

A Live Photo in a folder named `album-\\xff\\xfe` (bytes that are not UTF-8) beside a broken
still whose name holds a byte that is not UTF-8 and a newline: `lmd scan` used to die with
`UnicodeEncodeError: surrogates not allowed` at the store's first directory-cache lookup. Now
scan, rescan (from the cache) and work go through on SQLite and PostgreSQL, the output is
written under the very bytes of the folder's name, the store holds the escaped form, and logs
and `lmd jobs list` show it escaped.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.logging import configure_logging
from daemon.scanner import run_scan
from daemon.store import open_store
from daemon.worker import Worker
from tests.service.helpers import TINY_SCALE, TINY_VIDEO, make_settings

FOLDER = b"album-\xff\xfe"
BROKEN = b"IMG_9\xff\nX.JPG"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One reselected Live Photo in a folder named with bytes that are not UTF-8 (built once)."""
    from daemon.demo import build_sample_library

    library = tmp_path_factory.mktemp("names") / "library"
    build_sample_library(library, count=1, video_size=TINY_VIDEO, scale=TINY_SCALE)
    (folder,) = [p for p in library.iterdir() if p.is_dir()]
    os.rename(folder, os.path.join(os.fsencode(library), FOLDER))
    (library / os.fsdecode(FOLDER) / os.fsdecode(BROKEN)).write_bytes(b"\xff\xd8\xff not a jpeg")
    return library


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'lmd.sqlite3'}"
    return request.getfixturevalue("postgres_url")


def test_scan_and_work_in_a_folder_named_with_bytes(
    template: Path, tmp_path: Path, database_url: str
) -> None:
    library = tmp_path / "library"
    shutil.copytree(template, library)
    # a tiny synthetic clip has low flow confidence: no review hold, the output is written now
    from daemon.settings import Settings

    held = {"review": {"min_flow_confidence": 0}} if "review" in Settings.model_fields else {}
    settings = make_settings(tmp_path, database_url=database_url, **held)
    folder = os.fsdecode(FOLDER)
    logs = io.StringIO()
    configure_logging("info", "json", stream=logs)
    with open_store(settings.database_url) as store:
        first = run_scan(settings, library, store=store)
        assert (first.restorable, first.enqueued, first.unreadable) == (1, 1, 1)
        again = run_scan(settings, library, store=store)  # from the cache, keys matched
        assert (again.restorable, again.enqueued, again.moved) == (1, 0, 0)

        problems = store.library_problems()
        assert [os.fsencode(p["key"]) for p in problems] == [FOLDER + b"/" + BROKEN]

        assert Worker(settings, store, worker_id="t").run_until_empty() == 1
        (job,) = store.list_jobs(state="succeeded")
        assert os.fsencode(job.asset_key).startswith(FOLDER + b"/IMG_")
        reference = Path(job.payload["reference"])
        assert reference.parent == library / folder and reference.is_file()
        assert job.output_path is not None
        out = os.fsencode(job.output_path)
        assert out.startswith(os.fsencode(settings.output.tree) + b"/" + FOLDER + b"/")
        assert os.path.isfile(out)
        assert FOLDER in os.listdir(os.fsencode(settings.output.tree))
        assert [e.to_state for e in store.events(job.id)][-1] == "succeeded"

    lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    enqueued = next(r for r in lines if r["event"] == "job_enqueued")
    assert enqueued["asset"].startswith("album-\\xff\\xfe/IMG_")  # shown escaped, one line

    if not database_url.startswith("sqlite"):
        return
    # what is stored: the escaped text, valid UTF-8
    db = sqlite3.connect(database_url.removeprefix("sqlite:///"))
    keys = {k for (k,) in db.execute("SELECT key FROM assets")}
    db.close()
    assert "album-\\xff\\xfe/IMG_9\\xff\\nX.JPG" in keys, keys
    # and what `lmd jobs list` and `lmd jobs show` print (piped: TSV): escaped, never the raw
    # bytes, and the payload's paths as names (not JSON's \udcff)
    env = {**os.environ, "LMD_DATABASE_URL": database_url, "LMD_LIBRARY": str(library),
           "LMD_STATE_DIR": str(tmp_path / "state"), "NO_COLOR": "1"}
    for command in (["jobs", "list"], ["jobs", "show", str(job.id)]):
        shown = subprocess.run([sys.executable, "-m", "daemon.cli", *command],
                               capture_output=True, check=False, timeout=120, env=env)
        assert shown.returncode == 0, shown.stderr
        assert b"/album-\\xff\\xfe/IMG_" in shown.stdout, shown.stdout
        assert FOLDER not in shown.stdout and b"udcff" not in shown.stdout
