"""The daemon's `video` job kind (issue 14 item 2), end to end on real files and SQLite.

A library of real (tiny) Live Photos built in code: `lmd scan` enqueues a video job only when
`[video] enabled`, `lmd work` restores it into a MOV that keeps its frames, timing and pairing
metadata, replace mode keeps a backup that `lmd revert` gives back byte for byte, `lmd status`
counts video jobs apart, and a video job that loses its lease or is paused between frames
leaves nothing in the library or the tree.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core import CancelToken
from daemon.library.quicktime import read_mov_info
from daemon.library.synth import write_reselected_live_photo
from daemon.output import TEMP_PREFIX
from daemon.output.video import SourceMovie, source_timing
from daemon.settings import load_settings
from daemon.store import JobStore, open_store
from daemon.worker import JobContext, Outcome
from daemon.worker.files import LibraryFiles
from daemon.worker.restorers import RestorerHolder
from daemon.worker.video_job import run_video_job

FRAMES, SIZE, FPS = 8, (48, 64), 30.0
T0, T1 = 2, 5
CID = "5B4A8E3C-0000-4000-8000-00000000C1D0"


def _frames(seed: int) -> list[np.ndarray]:
    """`FRAMES` upright frames of a texture panning one pixel per frame."""
    h, w = SIZE
    rng = np.random.default_rng(seed)
    base = (rng.random((h + FRAMES, w + FRAMES, 3)) * 255).astype(np.uint8)
    return [np.ascontiguousarray(base[i : i + h, i : i + w]) for i in range(FRAMES)]


def _library(root: Path) -> Path:
    """IMG_0001: a reselected Live Photo; IMG_0002: a Live Photo whose key frame was kept."""
    write_reselected_live_photo(root, "IMG_0001", _frames(1), FPS, T0, T1, scale=2,
                                content_id=CID)
    write_reselected_live_photo(root, "IMG_0002", _frames(2), FPS, T0, T0, scale=2,
                                with_edited=False, with_aae=False)
    return root


def _config(tmp_path: Path, video: str, output: str = "") -> Path:
    config = tmp_path / "lmd.toml"
    config.write_text(
        f'library = "{tmp_path / "library"}"\nstate_dir = "{tmp_path / "state"}"\n'
        f'[watcher]\nmode = "off"\n[output]\n{output}\n[video]\n{video}\n'
    )
    return config


ENABLED = 'enabled = true\nparams = { face_check = false }'


def lmd(config: Path, *args: str) -> tuple[int, str]:
    """`lmd --config CONFIG ARGS` in-process; the exit code and what it printed."""
    from daemon.cli import main

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(["--config", str(config), *args])
    return code, buffer.getvalue()


@pytest.fixture
def library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in [n for n in os.environ if n.upper().startswith("LMD_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return _library(tmp_path / "library")


def _jobs(config: Path) -> list[tuple[str, str, str]]:
    settings = load_settings(config)
    with open_store(settings.database_url) as store:
        return sorted((j.asset_key, j.kind, j.state.value) for j in store.list_jobs())


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _leftovers(root: Path) -> list[str]:
    return [p.name for p in root.rglob("*") if p.name.startswith(TEMP_PREFIX)]


@pytest.mark.parametrize(
    ("video", "expected"),
    [
        ("", []),  # off by default
        (ENABLED, ["IMG_0001"]),  # which = "reselected"
        (ENABLED + '\nwhich = "all"', ["IMG_0001", "IMG_0002"]),
    ],
)
def test_scan_enqueues_video_jobs_only_when_enabled(
    tmp_path: Path, library: Path, video: str, expected: list[str]
) -> None:
    config = _config(tmp_path, video)
    code, out = lmd(config, "scan", "--json")
    assert code == 0
    assert json.loads(out)["summary"]["videos_enqueued"] == len(expected)
    jobs = _jobs(config)
    assert [key for key, kind, _ in jobs if kind == "video"] == expected
    assert [key for key, kind, _ in jobs if kind == "still"] == ["IMG_0001"]
    # a second scan is a no-op for both kinds
    assert json.loads(lmd(config, "scan", "--json")[1])["summary"]["videos_enqueued"] == 0
    assert _jobs(config) == jobs


def test_work_restores_the_video_as_a_live_photo_half(tmp_path: Path, library: Path) -> None:
    config = _config(tmp_path, ENABLED)
    source = library / "IMG_0001.MOV"
    before = _sha(source)
    code, said = lmd(config, "scan")
    assert code == 0 and "1 video jobs enqueued" in said
    assert lmd(config, "work")[0] == 0
    assert _jobs(config) == [("IMG_0001", "still", "succeeded"), ("IMG_0001", "video", "succeeded")]
    out = tmp_path / "state" / "restored" / "IMG_0001.MOV"
    # the same frames at the same times, and what pairs it with its still
    original, restored = source_timing(SourceMovie(path=source)), source_timing(
        SourceMovie(path=out))
    assert len(restored.pts) == FRAMES
    assert (restored.pts, restored.time_base) == (original.pts, original.time_base)
    info, kept = read_mov_info(source), read_mov_info(out)
    assert kept.content_identifier == info.content_identifier == CID
    assert kept.still_image_time == pytest.approx(info.still_image_time, abs=1e-3)
    assert kept.duration == pytest.approx(info.duration, abs=1e-3)
    assert _sha(source) == before  # sidecar mode: the library is untouched
    settings = load_settings(config)
    with open_store(settings.database_url) as store:
        (video,) = [j for j in store.list_jobs() if j.kind == "video"]
        assert video.output_path == str(out)
        assert video.provenance["kind"] == "video" and video.provenance["frames"] == FRAMES
        assert video.provenance["key_frame"] == T0  # the still-image-time's frame
        assert store.find_outputs([video.output_signature["content_hash"]])  # indexed
    code, out_json = lmd(config, "status", "--json")
    assert code == 0
    status = json.loads(out_json)
    assert status["jobs"]["succeeded"] == 1 and status["video_jobs"]["succeeded"] == 1
    assert status["jobs"]["pending"] == status["video_jobs"]["pending"] == 0
    code, table = lmd(config, "status")
    assert code == 0 and "video jobs" in table
    # `lmd jobs list` names a video job by its video, its still job by the still
    code, listed = lmd(config, "jobs", "list")
    rows = [line.split("\t") for line in listed.splitlines()[1:]]
    assert code == 0
    assert sorted(Path(row[3]).name for row in rows) == ["IMG_0001.MOV", "IMG_E0001.HEIC"]


def test_replace_then_revert_gives_the_mov_back_byte_for_byte(
    tmp_path: Path, library: Path
) -> None:
    config = _config(tmp_path, ENABLED, 'mode = "replace"')
    mov = library / "IMG_0001.MOV"
    original = mov.read_bytes()
    assert lmd(config, "scan")[0] == 0
    assert lmd(config, "work")[0] == 0
    assert _jobs(config) == [("IMG_0001", "still", "succeeded"), ("IMG_0001", "video", "succeeded")]
    assert mov.read_bytes() != original
    assert read_mov_info(mov).content_identifier == CID
    # lmd's MOV in the library stands for the original: nothing new to do on a rescan
    summary = json.loads(lmd(config, "scan", "--json")[1])["summary"]
    assert (summary["enqueued"], summary["videos_enqueued"], summary["own_outputs"]) == (0, 0, 0)
    code, out = lmd(config, "revert", str(mov))
    assert code == 0, out
    assert mov.read_bytes() == original
    assert _leftovers(library) == []


def _context(store: JobStore, config: Path, **overrides: Any) -> JobContext:
    settings = load_settings(config)
    base: dict[str, Any] = {
        "store": store, "files": LibraryFiles(store), "restorers": RestorerHolder(settings),
        "worker_id": "w1", "lease_seconds": 30.0, "heartbeat_seconds": 20.0,
        "defer_seconds": 60.0,
    }
    base.update(overrides)
    return JobContext(**base)


def _claimed_video(config: Path, store: JobStore):
    from daemon.scanner import run_scan

    settings = load_settings(config)
    run_scan(settings, settings.library, store=store)
    (video,) = [j for j in store.list_jobs() if j.kind == "video"]
    store.cancel(next(j.id for j in store.list_jobs() if j.kind == "still"))
    job = store.claim("w1", 30.0)
    assert job is not None and job.id == video.id
    return job


class StolenAtTheFence:
    """The real store, whose lease is taken by another worker just before the rename: the
    lease runs out, the job is claimed again (a new generation), then the fence asks."""

    def __init__(self, store: JobStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def hold_lease(self, job_id: int, worker_id: str, generation: int, lease: float) -> bool:
        from sqlalchemy import update

        from daemon.store.jobs import utcnow
        from daemon.store.models import jobs

        with self._store.engine.begin() as conn:
            conn.execute(update(jobs).where(jobs.c.id == job_id)
                         .values(lease_expires_at=utcnow().replace(year=2000)))
        self._store.requeue_expired()
        assert self._store.claim("thief", 30.0) is not None
        return self._store.hold_lease(job_id, worker_id, generation, lease)


@pytest.mark.parametrize("mode", ["sidecar", "replace"])
def test_a_lost_lease_leaves_nothing_behind(tmp_path: Path, library: Path, mode: str) -> None:
    config = _config(tmp_path, ENABLED, f'mode = "{mode}"')
    before = {p.name: _sha(p) for p in library.iterdir()}
    settings = load_settings(config)
    with open_store(settings.database_url) as store:
        job = _claimed_video(config, store)
        ctx = _context(StolenAtTheFence(store), config)  # type: ignore[arg-type]
        assert run_video_job(job, ctx, CancelToken()) == Outcome.LEASE_LOST
        now = store.get_job(job.id)
        assert (now.state.value, now.lease_owner, now.output_path) == ("running", "thief", None)
        assert store.find_outputs([]) == {}
    assert {p.name: _sha(p) for p in library.iterdir()} == before
    tree = tmp_path / "state" / "restored"
    assert not tree.exists() or [p for p in tree.rglob("*") if p.is_file()] == []


def test_progress_per_frame_and_a_pause_between_frames(tmp_path: Path, library: Path) -> None:
    """The heartbeat publishes the fraction of frames done; a pause cancels between frames:
    the job goes back to the queue and no movie (nor temporary file) is left."""
    config = _config(tmp_path, ENABLED)
    settings = load_settings(config)
    cancel = CancelToken()
    seen: list[tuple[float, str]] = []

    def frames_seen() -> list[str]:
        return sorted({stage for _, stage in seen if stage.startswith("frame")})

    def wait_for_publish() -> None:
        """Called per frame (`on_alive`): hold the frame until the heartbeat published its
        progress (each frame's stage is new), polled with a generous deadline."""
        count, deadline = len(set(seen)), time.monotonic() + 20
        while len(set(seen)) == count and not cancel.cancelled and time.monotonic() < deadline:
            time.sleep(0.005)

    with open_store(settings.database_url) as store:
        job = _claimed_video(config, store)
        ctx = _context(
            store, config, heartbeat_seconds=0.05,
            on_progress=lambda fraction, stage: seen.append((fraction, stage)),
            on_alive=wait_for_publish,
            should_stop=lambda: "paused" if len(frames_seen()) >= 3 else None,
        )
        assert run_video_job(job, ctx, cancel) == Outcome.RELEASED
        now = store.get_job(job.id)
        assert now.state.value == "pending" and "paused" in (now.last_error or "") + str(
            [e.reason for e in store.events(job.id)])
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions)
    # one stage per frame, each at its share of the clip; paused before the last frame
    assert frames_seen()[:3] == [f"frame {i}/{FRAMES}" for i in (1, 2, 3)]
    assert len(frames_seen()) < FRAMES
    assert (0.0, f"frame 1/{FRAMES}") in seen
    assert 0 < max(fractions) < 1
    tree = tmp_path / "state" / "restored"
    assert not tree.exists() or [p for p in tree.rglob("*") if p.is_file()] == []


def test_a_motion_photo_gets_a_sidecar_mp4_even_in_replace_mode(
    tmp_path: Path, library: Path
) -> None:
    """Its video lives inside the photo and is not re-embedded: the restored one is an MP4 in
    the tree named after the photo, and the photo is never touched."""
    from daemon.library.synth import encode_video, write_google_motion_jpeg

    frames = _frames(3)
    key = np.asarray(np.kron(frames[T0], np.ones((2, 2, 1))), dtype=np.uint8)
    photo = write_google_motion_jpeg(library / "PXL_20260101_120000000.MP.jpg", key,
                                     encode_video(frames, FPS, "mp4"), int(T0 / FPS * 1e6))
    before = _sha(photo)
    config = _config(tmp_path, ENABLED + '\nwhich = "all"', 'mode = "replace"')
    assert lmd(config, "scan")[0] == 0
    keys = [key for key, kind, _ in _jobs(config) if kind == "video"]
    assert "PXL_20260101_120000000" in " ".join(keys), keys
    assert lmd(config, "work")[0] == 0
    assert all(state == "succeeded" for _, _, state in _jobs(config)), _jobs(config)
    out = tmp_path / "state" / "restored" / "PXL_20260101_120000000.MP.mp4"
    assert len(source_timing(SourceMovie(path=out)).pts) == FRAMES
    assert _sha(photo) == before


def test_a_video_swapped_for_a_link_out_of_the_library_is_refused(
    tmp_path: Path, library: Path
) -> None:
    """The same bytes and mtime outside the library pass every content check; only where the
    file lies tells it apart, and the job fails with the reason instead of reading it."""
    import shutil

    config = _config(tmp_path, ENABLED)
    assert lmd(config, "scan")[0] == 0
    mov = library / "IMG_0001.MOV"
    outside = tmp_path / "elsewhere" / mov.name
    outside.parent.mkdir()
    shutil.copy2(mov, outside)
    mov.unlink()
    os.symlink(outside, mov)
    assert lmd(config, "work")[0] == 0
    settings = load_settings(config)
    with open_store(settings.database_url) as store:
        (video,) = [j for j in store.list_jobs() if j.kind == "video"]
        assert video.state.value == "failed"
        assert "out of the library" in (video.last_error or "")
    tree = tmp_path / "state" / "restored"
    assert not (tree / "IMG_0001.MOV").exists()


class LostAfterTheRename:
    """The real store, whose `succeed` finds the lease gone (another worker took the job
    after the movie was renamed into place): the write must be taken back."""

    def __init__(self, store: JobStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def succeed(self, job_id: int, *args: Any, **kwargs: Any) -> None:
        from daemon.store import LeaseLost

        raise LeaseLost(f"job {job_id} is someone else's now")


@pytest.mark.parametrize("mode", ["sidecar", "replace"])
def test_a_lease_lost_after_the_rename_takes_the_write_back(
    tmp_path: Path, library: Path, mode: str
) -> None:
    config = _config(tmp_path, ENABLED, f'mode = "{mode}"')
    before = {p.name: _sha(p) for p in library.iterdir()}
    settings = load_settings(config)
    with open_store(settings.database_url) as store:
        job = _claimed_video(config, store)
        ctx = _context(LostAfterTheRename(store), config)  # type: ignore[arg-type]
        assert run_video_job(job, ctx, CancelToken()) == Outcome.LEASE_LOST
        assert store.get_job(job.id).output_path is None
    assert {p.name: _sha(p) for p in library.iterdir()} == before
    tree = tmp_path / "state" / "restored"
    assert not tree.exists() or [p for p in tree.rglob("*") if p.is_file()] == []


def test_a_new_still_job_after_the_mov_was_replaced_reads_its_original(
    tmp_path: Path, library: Path
) -> None:
    """Replace mode: once the video job replaced the MOV, a still job made later (another
    restorer parameter) finds the same inputs (the MOV stands for its original) and restores
    from the backed-up original MOV instead of being skipped as changed."""
    config = _config(tmp_path, ENABLED, 'mode = "replace"')
    assert lmd(config, "scan")[0] == 0
    assert lmd(config, "work")[0] == 0
    text = config.read_text().replace("[output]", "[restorer]\nparams = { tone_sigma = 5.0 }\n"
                                      "[output]")
    config.write_text(text)
    summary = json.loads(lmd(config, "scan", "--json")[1])["summary"]
    assert (summary["enqueued"], summary["videos_enqueued"]) == (1, 0)
    assert lmd(config, "work")[0] == 0
    assert _jobs(config) == [("IMG_0001", "still", "succeeded"), ("IMG_0001", "still", "succeeded"),
                             ("IMG_0001", "video", "succeeded")]


def test_a_video_job_for_other_weights_fails_with_the_reason(
    tmp_path: Path, library: Path
) -> None:
    """The job pins the digest of the clip restorer's weights; a worker whose restorer would
    load other weights (a checkpoint replaced since the scan) fails it instead of recording one
    restoration under another's name."""
    from sqlalchemy import update

    from daemon.store.models import jobs

    config = _config(tmp_path, ENABLED)
    assert lmd(config, "scan")[0] == 0
    settings = load_settings(config)
    with open_store(settings.database_url) as store:
        (video,) = [j for j in store.list_jobs() if j.kind == "video"]
        assert video.weights_digest == "none"  # guided-video has no weights
        with store.engine.begin() as conn:
            conn.execute(update(jobs).where(jobs.c.id == video.id)
                         .values(weights_digest="blake3-checkpoint:0123"))
    assert lmd(config, "work")[0] == 0
    with open_store(settings.database_url) as store:
        failed = store.get_job(video.id)
        assert failed.state.value == "failed" and failed.attempts == 1
        assert "blake3-checkpoint:0123" in (failed.last_error or "")
    assert not (tmp_path / "state" / "restored" / "IMG_0001.MOV").exists()


def test_reprocess_force_redoes_a_replaced_video_from_its_original(
    tmp_path: Path, library: Path
) -> None:
    """A redo (reprocess --force) re-queues the still and the video job of one asset alike;
    the video is restored again from the backed-up original, never from lmd's MOV, whose
    backup keeps the true original: revert still gives those bytes back."""
    config = _config(tmp_path, ENABLED, 'mode = "replace"')
    mov = library / "IMG_0001.MOV"
    original = mov.read_bytes()
    assert lmd(config, "scan")[0] == 0
    assert lmd(config, "work")[0] == 0
    first = mov.read_bytes()
    code, out = lmd(config, "reprocess", "--since", "1d", "--force", "--json")
    assert code == 0 and json.loads(out)["requeued"] == 2
    code, out = lmd(config, "work", "--json")
    assert code == 0 and json.loads(out)["ran"] == 2
    assert [state for _, _, state in _jobs(config)] == ["succeeded", "succeeded"]
    # the same restoration of the same original (guided-video is deterministic)
    assert mov.read_bytes() == first
    assert lmd(config, "revert", str(mov))[0] == 0
    assert mov.read_bytes() == original


def test_a_replaced_mov_that_moved_keeps_its_job_and_reverts(
    tmp_path: Path, library: Path
) -> None:
    """Replace mode, then the folder moves: the rescan finds lmd's MOV under its new path, the
    video job and the index follow it (no new work), and revert puts the original back there."""
    config = _config(tmp_path, ENABLED, 'mode = "replace"')
    original = (library / "IMG_0001.MOV").read_bytes()
    assert lmd(config, "scan")[0] == 0
    assert lmd(config, "work")[0] == 0
    (library / "2026").mkdir()
    for name in ("IMG_0001.HEIC", "IMG_E0001.HEIC", "IMG_0001.MOV", "IMG_0001.AAE"):
        (library / name).rename(library / "2026" / name)
    moved = library / "2026" / "IMG_0001.MOV"
    summary = json.loads(lmd(config, "scan", "--json")[1])["summary"]
    assert (summary["enqueued"], summary["videos_enqueued"]) == (0, 0)
    settings = load_settings(config)
    with open_store(settings.database_url) as store:
        (video,) = [j for j in store.list_jobs() if j.kind == "video"]
        assert video.output_path == str(moved)
        assert [row.path for row in store.outputs_of_job(video.id)] == [str(moved)]
    assert lmd(config, "work")[0] == 0  # follows the records; nothing to restore
    assert lmd(config, "revert", str(moved))[0] == 0
    assert moved.read_bytes() == original


def test_which_all_finds_the_key_frame_of_a_video_without_a_key_time(
    tmp_path: Path, library: Path
) -> None:
    """A Live Photo whose MOV records no still-image-time (not restorable as a still) still
    gets its video restored with which = "all": the key photo's frame is found by matching."""
    from daemon.library.synth import write_apple_still, write_live_mov

    frames = _frames(4)
    cid = "5B4A8E3C-0000-4000-8000-00000000C1D1"
    key = np.asarray(np.kron(frames[5], np.ones((2, 2, 1))), dtype=np.uint8)
    write_apple_still(library / "IMG_0003.HEIC", key, cid, "heic")
    write_live_mov(library / "IMG_0003.MOV", frames, FPS, cid, None)
    config = _config(tmp_path, ENABLED + '\nwhich = "all"')
    assert lmd(config, "scan")[0] == 0
    assert ("IMG_0003", "video", "pending") in _jobs(config)
    assert lmd(config, "work")[0] == 0
    assert ("IMG_0003", "video", "succeeded") in _jobs(config)
    settings = load_settings(config)
    with open_store(settings.database_url) as store:
        (job,) = [j for j in store.list_jobs() if j.asset_key == "IMG_0003"]
        assert job.payload["t0"] is None
        assert job.provenance["key_frame"] == 5  # the frame the key photo shows, matched
    out = tmp_path / "state" / "restored" / "IMG_0003.MOV"
    assert len(source_timing(SourceMovie(path=out)).pts) == FRAMES


def test_a_copied_folder_does_not_move_the_video_job(tmp_path: Path, library: Path) -> None:
    """The same Live Photo in two folders is a copy, not a move: the video job stays with the
    key photo it was made for (the rule of the still's job, `daemon.copies`), rather than
    following whichever copy the scan met last and growing a 'moved' event on every scan."""
    config = _config(tmp_path, ENABLED)
    copy = library / "copy"
    copy.mkdir()
    for name in ("IMG_0001.HEIC", "IMG_E0001.HEIC", "IMG_0001.MOV", "IMG_0001.AAE"):
        (copy / name).write_bytes((library / name).read_bytes())
    settings = load_settings(config)
    for _ in range(3):
        assert lmd(config, "scan")[0] == 0
        with open_store(settings.database_url) as store:
            jobs = {(j.kind, j.asset_key): j.id for j in store.list_jobs()}
            assert sorted(jobs) == [("still", "IMG_0001"), ("video", "IMG_0001")]
            video = jobs[("video", "IMG_0001")]
            assert store.get_job(video).payload["reference"] == str(library / "IMG_0001.HEIC")
            assert [e.reason for e in store.events(video)
                    if (e.reason or "").startswith("moved")] == []
