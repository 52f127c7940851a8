"""Nothing stuck (issue 10 finding 4): an input touched or moved between scan and work never
leaves its job skipped for good."""

from __future__ import annotations

import os
from pathlib import Path

from daemon.scanner import run_scan
from daemon.settings import Settings
from daemon.store import JobState, open_store
from tests.integrity.helpers import worker
from tests.integrity.invariants import People, check


def test_a_touched_input_is_re_read_not_skipped(settings: Settings, library: Path) -> None:
    people = People(library)
    people.scan_in()
    with open_store(settings.database_url) as store:
        assert run_scan(settings, library, store=store).enqueued == 3
        video = library / "2026" / "IMG_1201.MOV"
        st = video.stat()
        os.utime(video, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # `touch`
        assert worker(settings, store).run_until_empty() == 3
        assert store.counts()["succeeded"] == 3
        again = run_scan(settings, library, store=store)
        assert again.enqueued == 0
        [job] = store.jobs_for_asset("2026/IMG_1201")
        assert job.payload["signatures"]["video"]["mtime_ns"] == st.st_mtime_ns + 10**9
        assert check(store, settings.output.backup_dir, people, drained=True) == []


def test_a_folder_moved_between_scan_and_work_is_queued_again_by_the_next_scan(
    settings: Settings, library: Path
) -> None:
    people = People(library)
    people.scan_in()
    with open_store(settings.database_url) as store:
        assert run_scan(settings, library, store=store).enqueued == 3
        (library / "2026").rename(library / "2026-trip")
        people.move(library / "2026", library / "2026-trip")
        assert worker(settings, store).run_until_empty() == 3
        assert store.counts()["skipped"] == 3
        summary = run_scan(settings, library, store=store)
        assert (summary.enqueued, summary.moved) == (0, 3)
        assert store.counts()["pending"] == 3
        assert worker(settings, store).run_until_empty() == 3
        assert store.counts()["succeeded"] == 3
        assert all(j.output_path.startswith(str(library / "2026-trip"))
                   for j in store.list_jobs())
        assert check(store, settings.output.backup_dir, people, drained=True) == []


def test_retrying_a_skipped_job_re_reads_its_inputs(settings: Settings, library: Path) -> None:
    """Moved away between scan and work (skipped), moved back (and touched on the way, as a
    sync tool does), `lmd jobs retry`: the worker reads the inputs again and finds the content
    the job names."""
    people = People(library)
    people.scan_in()
    with open_store(settings.database_url) as store:
        assert run_scan(settings, library, store=store).enqueued == 3
        (library / "2026").rename(library / "away")
        assert worker(settings, store).run_until_empty() == 3
        skipped = store.list_jobs(state=JobState.SKIPPED)
        assert len(skipped) == 3
        (library / "away").rename(library / "2026")
        for path in (library / "2026").iterdir():
            st = path.stat()
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        assert all(store.retry(job.id) for job in skipped)
        assert worker(settings, store).run_until_empty() == 3
        assert store.counts()["succeeded"] == 3
        assert check(store, settings.output.backup_dir, people, drained=True) == []
