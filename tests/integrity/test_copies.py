"""A copy is not a move: the same Live Photo in two folders (an album exported twice, a backup
folder inside the library) has one job, and it stays with the copy it was made for.

Found by trying the library as a new user: the job followed whichever copy the scan met last,
so every scan reported each duplicate as "moved", wrote two "moved" events into the job's
history (a history that grew on every nightly scan) and pointed the job's paths at a copy lmd
never wrote to.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from daemon.scanner import ScanAction, run_scan
from daemon.settings import Settings
from daemon.store import JobStore, open_store
from tests.integrity.helpers import lmd_revert, worker
from tests.integrity.invariants import People, check, digest


def _moves(store: JobStore, job_id: int) -> list[str]:
    return [e.reason for e in store.events(job_id) if (e.reason or "").startswith("moved")]


def test_a_copied_folder_does_not_move_its_jobs_on_every_scan(
    settings: Settings, library: Path
) -> None:
    shutil.copytree(library / "2026", library / "copy", symlinks=True)
    people = People(library)
    people.scan_in()
    with open_store(settings.database_url) as store:
        actions: dict[str, str] = {}
        first = run_scan(settings, library, store=store,
                         on_asset=lambda a, action: actions.update({a.key: action}))
        assert (first.enqueued, first.moved) == (3, 0)
        assert {k: v for k, v in actions.items() if k.startswith("copy/")} == {
            f"copy/IMG_{n}": ScanAction.COPY for n in (1201, 1202, 1203)
        }
        jobs = {j.id: j.asset_key for j in store.list_jobs()}
        assert sorted(jobs.values()) == [f"2026/IMG_{n}" for n in (1201, 1202, 1203)]
        assert worker(settings, store).run_until_empty() == 3
        for _ in range(2):
            again = run_scan(settings, library, store=store)
            assert (again.enqueued, again.moved, again.outputs_moved) == (0, 0, 0)
        assert {j.id: j.asset_key for j in store.list_jobs()} == jobs
        assert all(_moves(store, job_id) == [] for job_id in jobs)
        assert check(store, settings.output.backup_dir, people, drained=True) == []
    assert lmd_revert(settings, "--all").exit_code == 0
    assert {path: digest(Path(path)) for path in people.files} == people.files


def test_a_moved_folder_is_still_a_move(settings: Settings, library: Path) -> None:
    """The other side of the rule: with nothing left at the old place, the job follows."""
    with open_store(settings.database_url) as store:
        assert run_scan(settings, library, store=store).enqueued == 3
        (library / "2026").rename(library / "2026-trip")
        summary = run_scan(settings, library, store=store)
        assert (summary.enqueued, summary.moved) == (0, 3)
        assert all(j.asset_key.startswith("2026-trip/") for j in store.list_jobs())
