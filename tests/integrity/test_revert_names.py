"""`lmd revert` shows what it put back in the escaped form lmd shows names in everywhere else
(`album-\\xff\\xfe`), and never reads a name as rich markup: it printed the raw bytes (as
U+FFFD on a terminal) and would style a folder named `[bold]`."""

from __future__ import annotations

import os
from pathlib import Path

from daemon.scanner import run_scan
from daemon.settings import Settings
from daemon.store import open_store
from tests.integrity.helpers import lmd_revert, worker
from tests.integrity.invariants import People, digest


def test_revert_shows_names_escaped_and_literal(settings: Settings, library: Path) -> None:
    album = os.fsdecode(b"album-\xff\xfe [bold]x")
    (library / "2026").rename(library / album)
    people = People(library)
    people.scan_in()
    with open_store(settings.database_url) as store:
        assert run_scan(settings, library, store=store).enqueued == 3
        assert worker(settings, store).run_until_empty() == 3
    done = lmd_revert(settings, "--all")
    assert done.exit_code == 0, done.output
    shown = sorted(line for line in done.output.splitlines() if line.startswith("reverted: "))
    assert shown == [
        f"reverted: {library}/album-\\xff\\xfe [bold]x/IMG_E{n}.HEIC"
        for n in (1201, 1202, 1203)
    ]
    assert {path: digest(Path(path)) for path in people.files} == people.files
