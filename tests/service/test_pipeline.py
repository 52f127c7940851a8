"""Scan → queue → worker → output on a real synthetic library, with real files and SQLite."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from daemon.files.exif import apple_content_identifier
from daemon.scanner import run_scan
from daemon.store import open_store
from daemon.worker import Worker
from tests.service.helpers import CountingRestorer, make_settings, tree_hashes


def _content_id(path: Path) -> str | None:
    from PIL import Image
    from pillow_heif import register_heif_opener

    register_heif_opener()
    with Image.open(path) as img:
        exif = img.info.get("exif")
    return apple_content_identifier(exif[6:] if exif and exif.startswith(b"Exif") else exif)


def test_scan_restore_and_repeat_safely(tmp_path: Path, tiny_library: Path) -> None:
    settings = make_settings(tmp_path)
    before = tree_hashes(tiny_library)
    store = open_store(settings.database_url)
    try:
        first = run_scan(settings, tiny_library, store=store)
        assert (first.restorable, first.enqueued) == (2, 2)
        again = run_scan(settings, tiny_library, store=store)
        assert (again.restorable, again.enqueued) == (2, 0)  # same identity: a no-op

        assert Worker(settings, store, worker_id="t").run_until_empty() == 2
        jobs = store.list_jobs(state="succeeded")
        assert len(jobs) == 2
        for job in jobs:
            out = Path(job.output_path)
            assert out.is_relative_to(settings.output.tree)
            target = Path(job.payload["target"])
            assert out.name == target.name and out.suffix == ".HEIC"
            assert job.output_signature["size"] == out.stat().st_size
            # the restored still keeps the ContentIdentifier, so it stays a Live Photo half
            assert _content_id(out) == _content_id(Path(job.payload["reference"]))
            assert [e.to_state for e in store.events(job.id)].count("succeeded") == 1
        assert tree_hashes(tiny_library) == before  # originals untouched
        assert Worker(settings, store, worker_id="t").run_until_empty() == 0
        assert store.counts()["succeeded"] == 2
    finally:
        store.close()


def test_moved_library_folder_keeps_its_jobs(tmp_path: Path, tiny_library: Path) -> None:
    settings = make_settings(tmp_path)
    store = open_store(settings.database_url)
    try:
        run_scan(settings, tiny_library, store=store)
        ids = sorted(job.id for job in store.list_jobs())
        shutil.move(tiny_library / "2026", tiny_library / "moved-2026")
        summary = run_scan(settings, tiny_library, store=store)
        assert summary.enqueued == 0
        assert summary.moved == 2
        jobs = store.list_jobs()
        assert sorted(job.id for job in jobs) == ids
        assert all("moved-2026" in job.payload["reference"] for job in jobs)
    finally:
        store.close()


def test_changed_input_supersedes_the_pending_job(tmp_path: Path, tiny_library: Path) -> None:
    from daemon.library.synth import write_apple_still

    settings = make_settings(tmp_path)
    store = open_store(settings.database_url)
    try:
        run_scan(settings, tiny_library, store=store)
        job = store.list_jobs()[0]
        edited = Path(job.payload["target"])
        import numpy as np

        from daemon.library.media import load_still

        pixels = (load_still(edited) * 255).astype(np.uint8)
        brighter = np.clip(pixels.astype(np.int16) + 6, 0, 255).astype(np.uint8)
        write_apple_still(edited, brighter, _content_id(edited) or "X", "heic")
        summary = run_scan(settings, tiny_library, store=store)
        assert summary.enqueued == 1
        old = store.get_job(job.id)
        assert old is not None and old.state == "cancelled"
        assert old.superseded_by is not None
    finally:
        store.close()


def test_bad_files_in_the_library_are_reported_not_fatal(tmp_path: Path, tiny_library: Path):
    settings = make_settings(tmp_path)
    (tiny_library / "2026" / "IMG_9999.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic" + b"\xff" * 9)
    (tiny_library / "2026" / "IMG_9999.MOV").write_bytes(b"")
    store = open_store(settings.database_url)
    try:
        summary = run_scan(settings, tiny_library, store=store)
        assert summary.enqueued == 2
        problems = store.library_problems()
        assert any("IMG_9999" in p["key"] for p in problems)
        assert all(p["reason"] for p in problems)
    finally:
        store.close()


def test_replace_mode_restores_once_and_reverts(tmp_path: Path, tiny_library: Path) -> None:
    from daemon.output import iter_records, revert

    settings = make_settings(tmp_path, output={"mode": "replace"})
    before = tree_hashes(tiny_library)
    store = open_store(settings.database_url)
    try:
        run_scan(settings, tiny_library, store=store)
        assert Worker(settings, store, worker_id="t").run_until_empty() == 2
        changed = {k for k, v in tree_hashes(tiny_library).items() if before.get(k) != v}
        assert changed == {"2026/IMG_E1201.HEIC", "2026/IMG_E1202.HEIC"}  # never the reference
        again = run_scan(settings, tiny_library, store=store)
        assert again.enqueued == 0  # lmd's own output is recognised as done
        records = list(iter_records(settings.output.backup_dir))
        assert len(records) == 2
        revert(records[0])
        config = tmp_path / "lmd.toml"
        config.write_text(f'library = "{tiny_library}"\nstate_dir = "{tmp_path / "state"}"\n'
                          '[output]\nmode = "replace"\n')
        rest = subprocess.run(
            [sys.executable, "-m", "daemon.cli", "--config", str(config), "revert", "--all"],
            capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[2],
        )
        assert rest.returncode == 0, rest.stderr
        assert tree_hashes(tiny_library) == before
        assert list(iter_records(settings.output.backup_dir)) == []  # reverted: records gone
        assert not any(p.is_file() for p in settings.output.backup_dir.rglob("*"))
    finally:
        store.close()


def test_livemoments_restorer_through_the_worker(tmp_path: Path, tiny_library: Path) -> None:
    """The diffusion restorer on a tiny random checkpoint written here, driven by the queue:
    its weights digest is part of the job identity."""
    from core.livemoments.digest import weights_digest
    from core.livemoments.write import write_random_checkpoint

    checkpoint = tmp_path / "ckpt"
    write_random_checkpoint(checkpoint, size="tiny", seed=3)
    settings = make_settings(
        tmp_path,
        restorer={"name": "livemoments", "checkpoint": checkpoint, "device": "cpu",
                  "params": {"tile": 64, "overlap": 16}},
        # a random checkpoint on 96 px frames aligns little: not held for review here (the
        # low-flow hold is tested in tests/review)
        review={"min_flow_confidence": 0},
    )
    store = open_store(settings.database_url)
    try:
        assert run_scan(settings, tiny_library, store=store).enqueued == 2
        jobs = store.list_jobs()
        assert {job.weights_digest for job in jobs} == {weights_digest(checkpoint)}
        assert Worker(settings, store, worker_id="t").run_until_empty(max_jobs=1) == 1
        done = store.list_jobs(state="succeeded")
        assert len(done) == 1 and done[0].provenance["restorer"] == "livemoments"
        assert Path(done[0].output_path).is_file()
    finally:
        store.close()


def test_frame_from_the_video_when_no_render_exists(tmp_path: Path) -> None:
    """An export with the AAE but no IMG_E render: the target is the video frame at T1. Even in
    replace mode nothing in the library is touched: there is no low-quality still to replace."""
    import numpy as np

    import daemon.demo as demo
    from daemon.library import synth

    rng = np.random.default_rng(1)
    scene = demo.make_scene(rng, 384, 288)
    poses = [demo._pose(scene, (4 * f, 2 * f), (0.3, 0.5)) for f in range(12)]
    frames = [demo._video_frame(view, rng, (96, 72)) for view in poses]
    library = tmp_path / "library"
    synth.write_reselected_live_photo(library, "IMG_0007", frames, 10.0, 3, 8,
                                      reference=poses[3], scale=4, with_edited=False)
    before = tree_hashes(library)
    settings = make_settings(tmp_path, output={"mode": "replace"})
    store = open_store(settings.database_url)
    try:
        assert run_scan(settings, library, store=store).enqueued == 1
        assert Worker(settings, store, worker_id="t").run_until_empty() == 1
        job = store.list_jobs(state="succeeded")[0]
        out = Path(job.output_path)
        assert out == settings.output.tree / "IMG_E0007.HEIC"  # named like Photos' render
        from daemon.library.media import load_still

        assert load_still(out).shape == (288, 384, 3)  # the reference's resolution
        assert tree_hashes(library) == before
    finally:
        store.close()


def test_output_tree_nested_in_a_library_folder_hides_only_itself(
    tmp_path: Path, tiny_library: Path
) -> None:
    """`output.tree = library/2026/lmd-out`: the photos in `2026` are still scanned, and the
    outputs written under `lmd-out` never come back as new assets."""
    tree = tiny_library / "2026" / "lmd-out"
    settings = make_settings(tmp_path, output={"tree": tree})
    store = open_store(settings.database_url)
    try:
        assert run_scan(settings, tiny_library, store=store).restorable == 2
        assert Worker(settings, store, worker_id="t").run_until_empty() == 2
        assert any(tree.rglob("*.HEIC"))
        again = run_scan(settings, tiny_library, store=store)
        assert (again.assets_found, again.restorable, again.enqueued) == (2, 2, 0)
    finally:
        store.close()


def test_scanning_one_folder_keeps_library_keys(tmp_path: Path, tiny_library: Path) -> None:
    import pytest

    from daemon.scanner import ScanError

    settings = make_settings(tmp_path)
    store = open_store(settings.database_url)
    try:
        partial = run_scan(settings, tiny_library / "2026", store=store)
        assert partial.enqueued == 2
        keys = sorted(job.asset_key for job in store.list_jobs())
        assert keys == ["2026/IMG_1201", "2026/IMG_1202"]  # relative to the library
        whole = run_scan(settings, tiny_library, store=store)
        assert (whole.enqueued, whole.moved) == (0, 0)  # same keys: nothing looks moved
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        with pytest.raises(ScanError, match="outside the configured library"):
            run_scan(settings, elsewhere, store=store)
        with pytest.raises(ScanError, match="no library configured"):
            run_scan(settings.model_copy(update={"library": None}), tiny_library, store=store)
    finally:
        store.close()


def test_the_job_row_is_the_truth_not_the_settings_at_work_time(
    tmp_path: Path, tiny_library: Path
) -> None:
    """Scan with one config, work with another: the output is written where, how and with the
    parameters the job pinned at enqueue. Scanning with the new config makes new jobs (new
    identities) that supersede the waiting ones instead of changing them."""
    scanned = make_settings(tmp_path, restorer={"name": "guided", "params": {"seed": 1}})
    changed = make_settings(
        tmp_path,
        restorer={"name": "guided", "params": {"seed": 2}},
        output={"location": "beside", "heic_quality": 40},
    )
    store = open_store(scanned.database_url)
    try:
        assert run_scan(scanned, tiny_library, store=store).enqueued == 2
        first = store.list_jobs()
        assert Worker(changed, store, worker_id="t").run_until_empty(max_jobs=1) == 1
        [done] = store.list_jobs(state="succeeded")
        out = Path(done.output_path)
        assert out.is_relative_to(scanned.output.tree)  # pinned: the tree, not beside
        assert done.provenance["params"] == {"seed": 1}
        assert not list(tiny_library.rglob(f"*{changed.output.suffix}.*"))

        again = run_scan(changed, tiny_library, store=store)
        assert again.enqueued == 2  # a new config is new work...
        waiting = next(j for j in first if j.id != done.id)
        old = store.get_job(waiting.id)
        assert old.state == "cancelled" and old.superseded_by is not None  # ...not a changed job
        new = store.get_job(old.superseded_by)
        assert new.output.location == "beside" and new.output.heic_quality == 40
        assert new.params == {"seed": 2}
    finally:
        store.close()


def test_a_bad_output_setting_fails_before_restoring(tmp_path: Path, tiny_library: Path) -> None:
    """An output that cannot be planned (here the tree maps every photo onto itself) is a
    non-retryable failure with the reason, found before any restoration is run."""
    settings = make_settings(tmp_path, output={"tree": tiny_library})
    store = open_store(settings.database_url)
    try:
        assert run_scan(settings, tiny_library, store=store).enqueued == 2
        restorer = CountingRestorer()
        assert Worker(settings, store, worker_id="t", restorer=restorer).run_until_empty() == 2
        jobs = store.list_jobs()
        assert {job.state for job in jobs} == {"failed"} and restorer.calls == 0
        assert all(job.attempts == 1 for job in jobs)
        assert all("bad output setting" in job.last_error and "onto itself" in job.last_error
                   for job in jobs)
    finally:
        store.close()
