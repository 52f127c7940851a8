"""A replaced MOV survives a crash at any point (issue 10's bar, applied to video jobs).

A worker killed (SIGKILL, here `Killed` raised where the kill lands) while replacing a Live
Photo's MOV leaves either the original in place or lmd's output with a record naming it: a
rescan makes no work of lmd's output, the retry restores from the backed-up original (once,
with one backup), and `lmd revert` gives the original bytes back.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core import CancelToken
from daemon.output import iter_records
from daemon.settings import load_settings
from daemon.store import JobState, open_store
from daemon.worker.video_job import run_video_job
from tests.integrity.helpers import Killed, expire, kill_at_the_final_record_write
from tests.video import test_video_jobs
from tests.video.test_video_jobs import ENABLED, _claimed_video, _config, _context, _jobs, lmd

library = test_video_jobs.library  # the fixture: a library of two tiny Live Photos


def _dies(*args: object, **kwargs: object) -> None:
    raise Killed


WHERE = ["at the fence before the rename", "before the final record write", "before succeed"]


@pytest.mark.parametrize("where", WHERE)
def test_a_crash_while_replacing_a_mov_is_redone_from_the_original(
    tmp_path: Path, library: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    config = _config(tmp_path, ENABLED, 'mode = "replace"')
    mov = library / "IMG_0001.MOV"
    original = mov.read_bytes()
    settings = load_settings(config)
    with open_store(settings.database_url) as store:
        job = _claimed_video(config, store)  # the still job is cancelled: only the video runs
        with monkeypatch.context() as kill:
            if where == "at the fence before the rename":
                kill.setattr(store, "hold_lease", _dies)
            elif where == "before succeed":
                kill.setattr(store, "succeed", _dies)
            else:
                kill_at_the_final_record_write(kill)
            with pytest.raises(Killed):
                run_video_job(job, _context(store, config), CancelToken())
        assert store.get_job(job.id).output_signature is None  # nothing recorded
        written = mov.read_bytes()
        assert (written == original) == (where == "at the fence before the rename")
        # no new work on lmd's output: the MOV stands for its original
        summary = json.loads(lmd(config, "scan", "--json")[1])["summary"]
        assert (summary["enqueued"], summary["videos_enqueued"]) == (0, 0), summary
        expire(store, job.id)
    code, out = lmd(config, "work", "--json")
    assert code == 0, out
    states = {(kind, state) for _, kind, state in _jobs(config)}
    assert ("video", JobState.SUCCEEDED.value) in states, states
    assert ("video", JobState.SKIPPED.value) not in states, states
    # restored once more from the original (guided-video is deterministic): the same movie
    if where != "at the fence before the rename":
        assert mov.read_bytes() == written
    assert mov.read_bytes() != original
    [record] = [r for r in iter_records(settings.output.backup_dir) if r.target == mov]
    assert record.backup.read_bytes() == original
    code, out = lmd(config, "revert", str(mov))
    assert code == 0, out
    assert mov.read_bytes() == original


def test_revert_right_after_a_crash_before_the_final_record_write(
    tmp_path: Path, library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The record names the movie only as announced before its rename (`pending`); a MOV has
    no XMP provenance to fall back on, yet revert knows it for lmd's and puts the original back."""
    config = _config(tmp_path, ENABLED, 'mode = "replace"')
    mov = library / "IMG_0001.MOV"
    original = mov.read_bytes()
    settings = load_settings(config)
    with open_store(settings.database_url) as store:
        job = _claimed_video(config, store)
        with monkeypatch.context() as kill:
            kill_at_the_final_record_write(kill)
            with pytest.raises(Killed):
                run_video_job(job, _context(store, config), CancelToken())
    assert mov.read_bytes() != original
    [record] = [r for r in iter_records(settings.output.backup_dir) if r.target == mov]
    assert record.output is None and record.pending is not None
    code, out = lmd(config, "revert", str(mov))
    assert code == 0, out
    assert mov.read_bytes() == original


def test_a_crash_while_redoing_a_replaced_mov_keeps_the_true_original(
    tmp_path: Path, library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A redo (other clip parameters) over lmd's MOV, killed after its rename: the record still
    names the first output and only announces the second (`pending`); the retry knows the MOV
    for lmd's, restores from the true original, and revert gives the original back."""
    from daemon.scanner import run_scan

    config = _config(tmp_path, ENABLED, 'mode = "replace"')
    mov = library / "IMG_0001.MOV"
    original = mov.read_bytes()
    assert lmd(config, "scan")[0] == 0
    assert lmd(config, "work")[0] == 0
    first = mov.read_bytes()
    config = _config(tmp_path, "enabled = true\nparams = { face_check = false, tone_sigma = 3.0 }",
                     'mode = "replace"')
    settings = load_settings(config)
    with open_store(settings.database_url) as store:
        assert run_scan(settings, settings.library, store=store).videos_enqueued == 1
        job = store.claim("w1", 30.0)
        assert job is not None and job.kind == "video"
        with monkeypatch.context() as kill:
            kill_at_the_final_record_write(
                kill, when=lambda record: record.output is not None and record.pending is None)
            with pytest.raises(Killed):
                run_video_job(job, _context(store, config), CancelToken())
        crashed = mov.read_bytes()
        assert crashed not in (original, first)
        assert run_scan(settings, settings.library, store=store).videos_enqueued == 0
        expire(store, job.id)
    assert lmd(config, "work")[0] == 0
    assert store_state(config, job.id) == JobState.SUCCEEDED.value
    assert mov.read_bytes() == crashed  # the same redo, from the same original
    [record] = [r for r in iter_records(settings.output.backup_dir) if r.target == mov]
    assert record.backup.read_bytes() == original
    assert lmd(config, "revert", str(mov))[0] == 0
    assert mov.read_bytes() == original


def store_state(config: Path, job_id: int) -> str:
    settings = load_settings(config)
    with open_store(settings.database_url) as store:
        return store.get_job(job_id).state.value
