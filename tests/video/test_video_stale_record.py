"""Two workers on one replace-mode video job, the first saving its record after its successor
(issue 10's fenced writes, as `tests/integrity/test_fenced_writes.py` plays them for stills).

The first worker renames its MOV into place and stalls before its record's final save; its
lease runs out and a second worker redoes the job from the backed-up original. The first then
wakes and saves the record naming its own movie, after the second's commit and before the
second records its success. The index row of the second's output must still name the record
(found by the original MOV it keeps): revert and the records that follow a moved MOV find the
backup through it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import daemon.output.replace as replace_module
from core import CancelToken
from daemon.output import iter_records
from daemon.settings import load_settings
from daemon.store import JobStore, open_store
from daemon.worker import Outcome
from daemon.worker.video_files import VideoFiles
from daemon.worker.video_job import run_video_job
from tests.integrity.helpers import expire
from tests.video import test_video_jobs
from tests.video.test_video_jobs import ENABLED, _claimed_video, _config, _context, lmd

library = test_video_jobs.library  # the fixture: a library of two tiny Live Photos


class SavesAfterWriting(VideoFiles):
    """Real files that run `after` right after the movie was committed (renamed, its record
    saved), before the worker records its success."""

    def __init__(self, index: Any, after: Any) -> None:
        super().__init__(index=index)
        self.after = after

    def write(self, *args: Any, **kwargs: Any) -> Any:
        signature = super().write(*args, **kwargs)
        self.after()
        return signature


class Brighter(VideoFiles):
    """Real files whose frames come brighter, so this worker's movie is not its successor's
    (guided-video is deterministic: the same frames would give the same bytes)."""

    def frames(self, asset: Any, original: Path) -> Iterator[np.ndarray]:
        for frame in super().frames(asset, original):
            yield np.clip(frame.astype(np.int16) + 64, 0, 255).astype(np.uint8)


def test_a_record_saved_over_by_a_stale_worker_is_still_indexed(
    tmp_path: Path, library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tmp_path, ENABLED, 'mode = "replace"')
    mov = library / "IMG_0001.MOV"
    original = mov.read_bytes()
    settings = load_settings(config)
    with open_store(settings.database_url) as store:
        job = _claimed_video(config, store)  # claimed by w1 (the still job is cancelled)
        save = replace_module.save_record
        outcomes: list[Outcome] = []

        def successor_works(store: JobStore) -> None:
            """w1's lease ran out: w2 claims the job and works it, and w1's stale record save
            lands right after w2's commit."""
            expire(store, job.id)
            store.requeue_expired()
            second = store.claim("w2", 30.0)
            assert second is not None and second.id == job.id
            files = SavesAfterWriting(store, lambda: save(stale[0]))
            ctx = _context(store, config, worker_id="w2")
            outcomes.append(run_video_job(second, ctx, CancelToken(), files=files))

        stale: list[Any] = []

        def stalls_on_the_final_write(record: Any) -> None:
            if record.output is not None and not stale:  # w1's, after its rename
                stale.append(record)
                successor_works(store)
                return  # saved by then, after w2's commit
            save(record)

        monkeypatch.setattr(replace_module, "save_record", stalls_on_the_final_write)
        first = Brighter(store)
        assert run_video_job(job, _context(store, config), CancelToken(), files=first) \
            == Outcome.LEASE_LOST
        monkeypatch.undo()
        assert outcomes == [Outcome.SUCCEEDED]
        [record] = list(iter_records(settings.output.backup_dir, mov))
        done = store.get_job(job.id)
        assert record.output is not None  # the first worker's movie, not the one in place
        assert record.output.content_hash != done.output_signature["content_hash"]
        [row] = store.outputs_of_job(job.id)
        assert row.record == str(record.record_path)
    # the index is how a moved MOV's record follows it and revert finds it there
    (library / "2026").mkdir()
    for name in ("IMG_0001.HEIC", "IMG_E0001.HEIC", "IMG_0001.MOV", "IMG_0001.AAE"):
        (library / name).rename(library / "2026" / name)
    moved = library / "2026" / "IMG_0001.MOV"
    summary = json.loads(lmd(config, "scan", "--json")[1])["summary"]
    assert summary["videos_enqueued"] == 0, summary
    code, out = lmd(config, "revert", str(moved))
    assert code == 0, out
    assert moved.read_bytes() == original
