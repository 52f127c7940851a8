"""lmd knows its own outputs wherever they go (issue 10 finding 1): a folder of replaced stills
renamed is "restored, moved" (nothing enqueued, the job, the index and the backup record follow
it), an edit of lmd's output is never an input, and revert works by content and job, not by the
path a still had when lmd replaced it."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from daemon.output import iter_records, read_metadata, read_provenance, write_image
from daemon.scanner import run_scan
from daemon.settings import Settings
from daemon.store import JobState, open_store
from tests.integrity.helpers import lmd_revert, worker
from tests.integrity.invariants import People, check, digest, revert_all_gives_back


def _replaced(settings: Settings, library: Path):  # type: ignore[no-untyped-def]
    people = People(library)
    people.scan_in()
    store = open_store(settings.database_url)
    assert run_scan(settings, library, store=store).enqueued == 3
    assert worker(settings, store).run_until_empty() == 3
    return people, store


def test_a_renamed_folder_of_replaced_stills_is_restored_moved(
    settings: Settings, library: Path
) -> None:
    people, store = _replaced(settings, library)
    try:
        (library / "2026").rename(library / "2026-trip")
        people.move(library / "2026", library / "2026-trip")
        summary = run_scan(settings, library, store=store)
        assert (summary.enqueued, summary.outputs_moved, summary.moved) == (0, 3, 0)
        assert store.counts()["pending"] == 0
        for job in store.list_jobs():
            assert job.state == JobState.SUCCEEDED and job.asset_key.startswith("2026-trip/")
            assert job.output_path.startswith(str(library / "2026-trip"))
            assert "restored, moved" in store.events(job.id)[-1].reason
        assert run_scan(settings, library, store=store).outputs_moved == 0  # said once
        assert worker(settings, store).run_until_empty() == 0  # follows the records
        targets = {str(r.target) for r in iter_records(settings.output.backup_dir)}
        assert targets == {str(library / "2026-trip" / f"IMG_E{n}.HEIC") for n in (1201, 1202,
                                                                                   1203)}
        assert check(store, settings.output.backup_dir, people, drained=True) == []

        result = lmd_revert(settings, "2026-trip/IMG_E1201.HEIC")
        assert result.exit_code == 0, result.output
        assert "reverted: " in result.output
        reverted = library / "2026-trip" / "IMG_E1201.HEIC"
        assert digest(reverted) == people.files[str(reverted)]  # the original, not lmd's
        job = store.jobs_for_asset("2026-trip/IMG_1201")[0]
        assert job.output_path is None  # no longer claims an output that is gone
        result = lmd_revert(settings, "--all")
        assert result.exit_code == 0, result.output
        assert result.output.count("reverted: ") == 2
        assert revert_all_gives_back(people, settings.output.backup_dir) == []
        assert check(store, settings.output.backup_dir, people, drained=True) == []
    finally:
        store.close()


def test_revert_finds_a_moved_still_by_its_content_before_any_scan(
    settings: Settings, library: Path
) -> None:
    people, store = _replaced(settings, library)
    store.close()
    shutil.move(library / "2026", library / "2026-trip")
    people.move(library / "2026", library / "2026-trip")
    result = lmd_revert(settings, "2026-trip/IMG_E1202.HEIC")
    assert result.exit_code == 0, result.output
    moved = library / "2026-trip" / "IMG_E1202.HEIC"
    assert digest(moved) == people.files[str(moved)]
    assert not (library / "2026").exists()  # put back where the still is now, not where it was


def test_an_edited_replaced_still_is_never_an_input(settings: Settings, library: Path) -> None:
    """A person edits lmd's output (an editor keeps its XMP, lmd's provenance included): the
    next scan leaves it alone, and revert refuses to overwrite the edit without --force."""
    people, store = _replaced(settings, library)
    try:
        edited = library / "2026" / "IMG_E1202.HEIC"
        from daemon.library.media import load_still

        brighter = np.clip(load_still(edited, dtype=np.uint8).astype(np.int16) + 20, 0, 255)
        provenance = read_provenance(read_metadata(edited).xmp)
        assert provenance is not None and provenance["job_id"]
        write_image(edited, brighter.astype(np.uint8), like=edited, xmp_provenance=provenance)
        people.edit_output(edited)
        summary = run_scan(settings, library, store=store)
        assert (summary.enqueued, summary.own_outputs) == (0, 1)
        assert check(store, settings.output.backup_dir, people, drained=True) == []
        refused = lmd_revert(settings, "2026/IMG_E1202.HEIC")
        assert refused.exit_code == 1 and "refused" in refused.output
        assert digest(edited) in people.derived  # the edit is still there
        forced = lmd_revert(settings, "--all", "--force")
        assert forced.exit_code == 0, forced.output
        assert revert_all_gives_back(people, settings.output.backup_dir) == []
    finally:
        store.close()


def test_the_scanner_knows_lmds_namespace() -> None:
    """The scanner recognises lmd's XMP provenance by the namespace the writer uses."""
    from daemon.output import LMD_NS
    from daemon.scanner import LMD_NS as SCANNER_LMD_NS

    assert SCANNER_LMD_NS == LMD_NS
