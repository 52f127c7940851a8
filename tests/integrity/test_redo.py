"""Redo from the original (issue 10 finding 3): in replace mode, reprocess, a crash retry and a
new restorer always restore from the backed-up original, never from the file in the library
(lmd's output by then); `reprocess` without --force leaves an output that is still in place
alone, with --force it redoes it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from daemon.library.media import load_still
from daemon.output import iter_records
from daemon.scanner import run_scan
from daemon.settings import Settings
from daemon.store import JobState, JobStore, open_store
from tests.integrity.helpers import Killed, Tinted, expire, kill_at_the_final_record_write, worker
from tests.integrity.invariants import People, check, digest

LONG_AGO = datetime.now(UTC) - timedelta(days=1)


def _originals(settings: Settings, store: JobStore) -> dict[int, np.ndarray]:
    """Each job's original target pixels, from its backup."""
    out = {}
    for job in store.list_jobs():
        target = Path(job.payload["target"])
        [record] = list(iter_records(settings.output.backup_dir, target))
        out[job.id] = load_still(record.backup, dtype=np.uint8)
    return out


def _restored_from(restorer: Tinted) -> list[np.ndarray]:
    """The target pixels each request carried (core hands restorers float32 k/255)."""
    return [np.rint(np.asarray(r.target) * 255).astype(np.uint8) for r in restorer.requests]


def _replaced(settings: Settings, library: Path) -> tuple[People, JobStore]:
    people = People(library)
    people.scan_in()
    store = open_store(settings.database_url)
    assert run_scan(settings, library, store=store).enqueued == 3
    assert worker(settings, store, restorer=Tinted(0.1)).run_until_empty() == 3
    return people, store


def test_reprocess_leaves_outputs_in_place_and_force_redoes_them_from_the_originals(
    settings: Settings, library: Path
) -> None:
    people, store = _replaced(settings, library)
    try:
        before = {p: digest(Path(p)) for p in people.files}
        assert store.reprocess(LONG_AGO) == 3
        idle = Tinted(0.1)
        assert worker(settings, store, restorer=idle).run_until_empty() == 3
        assert idle.requests == []  # nothing to redo: every output still in place
        assert {p: digest(Path(p)) for p in people.files} == before
        assert store.counts()["succeeded"] == 3

        originals = _originals(settings, store)
        assert store.reprocess(LONG_AGO, force=True) == 3
        forced = Tinted(0.2)
        assert worker(settings, store, restorer=forced).run_until_empty() == 3
        assert len(forced.requests) == 3
        for pixels in _restored_from(forced):
            assert any(np.array_equal(pixels, o) for o in originals.values())
        assert run_scan(settings, library, store=store).enqueued == 0
        assert len(list(iter_records(settings.output.backup_dir))) == 3  # one original each
        assert check(store, settings.output.backup_dir, people, drained=True) == []
    finally:
        store.close()


def test_another_restorer_redoes_replaced_stills_from_their_originals(
    tmp_path: Path, settings: Settings, library: Path
) -> None:
    """A changed restorer setting makes new work for every asset, replaced ones included:
    from the originals kept in the backups, never from lmd's outputs in the library."""
    people, store = _replaced(settings, library)
    try:
        originals = _originals(settings, store)
        changed = settings.model_copy(
            update={"restorer": settings.restorer.model_copy(update={"params": {"seed": 5}})}
        )
        summary = run_scan(changed, library, store=store)
        assert (summary.enqueued, summary.own_outputs) == (3, 0)
        redo = Tinted(0.3)
        assert worker(changed, store, restorer=redo).run_until_empty() == 3
        for pixels in _restored_from(redo):
            assert any(np.array_equal(pixels, o) for o in originals.values())
        assert len(list(iter_records(settings.output.backup_dir))) == 3
        assert check(store, settings.output.backup_dir, people, drained=True) == []
    finally:
        store.close()


@pytest.mark.parametrize("redo", [False, True], ids=["first restoration", "redo"])
@pytest.mark.parametrize("where", ["before the final record write", "before succeed"])
def test_a_crash_after_the_rename_is_redone_from_the_original(
    settings: Settings, library: Path, monkeypatch: pytest.MonkeyPatch, where: str, redo: bool
) -> None:
    """Killed after the rename, just before the record names the output (or just before the
    job's success is recorded): the next scan does not take the output for new input (it is
    not in the index yet, but carries lmd's provenance), and the retry restores from the
    original, once. As a redo (another restorer setting), the record still names the earlier
    job's output when the crash comes: the unrecorded output is known by the claim in its XMP."""
    people = People(library)
    people.scan_in()
    store = open_store(settings.database_url)
    try:
        assert run_scan(settings, library, store=store).enqueued == 3
        if redo:
            assert worker(settings, store, restorer=Tinted(0.05)).run_until_empty() == 3
            settings = settings.model_copy(update={"restorer": settings.restorer.model_copy(
                update={"params": {"seed": 7}})})
            assert run_scan(settings, library, store=store).enqueued == 3
        killed = worker(settings, store, restorer=Tinted(0.1))
        if where == "before succeed":
            def dies(*args, **kwargs):  # type: ignore[no-untyped-def]
                raise Killed
            monkeypatch.setattr(store, "succeed", dies)
        else:
            kill_at_the_final_record_write(monkeypatch)
        with pytest.raises(Killed):
            killed.run_once(ignore_windows=True)
        monkeypatch.undo()
        [job] = store.list_jobs(state=JobState.RUNNING)
        assert store.get_job(job.id).output_signature is None  # nothing recorded
        assert run_scan(settings, library, store=store).enqueued == 0  # no job on lmd's output
        expire(store, job.id)
        originals = _original_of(settings, job)
        retry = Tinted(0.2)
        assert worker(settings, store, restorer=retry).run_until_empty() == 3
        redone = [p for p in _restored_from(retry)
                  if p.shape == originals.shape and np.array_equal(p, originals)]
        assert len(redone) == 1
        assert store.get_job(job.id).state == JobState.SUCCEEDED
        assert len(list(iter_records(settings.output.backup_dir))) == 3
        assert check(store, settings.output.backup_dir, people, drained=True) == []
    finally:
        store.close()


def _original_of(settings: Settings, job) -> np.ndarray:  # type: ignore[no-untyped-def]
    target = Path(job.payload["target"])
    [record] = list(iter_records(settings.output.backup_dir, target))
    return load_still(record.backup, dtype=np.uint8)
