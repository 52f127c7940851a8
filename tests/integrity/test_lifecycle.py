"""A library's life in replace mode, scripted (issue 10 finding 6): real files, real SQLite,
workers in this process, and every invariant (`tests.integrity.invariants`) checked after every
step. The soak (`bench/soak.py`) plays the same life at random, with worker processes killed
and stopped."""

from __future__ import annotations

from pathlib import Path

from daemon.store import JobState, open_store
from tests.integrity.helpers import worker
from tests.integrity.invariants import revert_all_gives_back
from tests.integrity.life import Life


def _work(life: Life) -> None:
    assert life.store is not None
    worker(life.settings, life.store).run_until_empty()


def test_a_library_life_keeps_every_invariant(tmp_path: Path) -> None:
    life = Life(tmp_path)
    life.store = open_store(life.settings.database_url)
    try:
        _life(life)
    finally:
        life.store.close()


def _life(life: Life) -> None:
    store = life.store
    assert store is not None

    def step(name: str) -> None:
        assert life.verify(name, drained=True) == [], name

    first = life.add_photos(3)
    assert life.scan().enqueued == 3
    life.work(_work)
    step("photos added, scanned, restored in place")

    _, new = life.rename_folder(first)
    summary = life.scan()
    assert (summary.enqueued, summary.outputs_moved) == (0, 3)
    life.work(_work)
    step("folder renamed: restored, moved")

    moved = next(iter(sorted(new.rglob("IMG_E*.HEIC"))))
    result = life.revert(moved)
    assert result.exit_code == 0 and "reverted: " in result.output, result.output
    assert life.scan().enqueued == 0  # a reverted still stays the person's
    step("one moved still reverted by its new path")

    life.touch()
    assert life.scan().enqueued == 0
    life.work(_work)
    step("a video touched")

    second = life.add_photos(2)
    assert life.scan().enqueued == 2
    life.rename_folder(second)  # between scan and work
    life.work(_work)
    assert store.counts()["skipped"] == 2
    summary = life.scan()
    assert (summary.enqueued, summary.moved) == (0, 2)
    life.work(_work)
    assert store.counts()["skipped"] == 0
    step("a folder moved between scan and work")

    edited = life.edit_output()
    assert edited is not None
    summary = life.scan()
    assert (summary.enqueued, summary.own_outputs) == (0, 1)
    life.work(_work)
    step("a replaced still edited by the person")

    fresh = life.edit_target(next(p for p in life.stills(replaced=True) if p != edited))
    assert life.scan().enqueued == 1
    life.work(_work)
    assert fresh is not None
    step("a replaced still exported again by the person")

    assert len(life.delete()) == 4
    life.scan()
    life.work(_work)
    step("a Live Photo deleted")

    life.change_restorer()
    summary = life.scan()
    assert summary.enqueued >= 3
    life.work(_work)
    step("the restorer changed")

    assert life.change_mode() == "sidecar"
    assert life.scan().enqueued >= 3
    life.work(_work)
    step("the output mode changed to sidecar")
    assert life.change_mode() == "replace"
    life.scan()
    life.work(_work)
    step("back to replace mode")

    life.reprocess(force=False)
    life.work(_work)
    step("reprocess")
    life.reprocess(force=True)
    life.work(_work)
    step("reprocess --force")
    assert store.counts()[JobState.FAILED.value] == 0

    result = life.revert(None)
    assert "refused" in result.output  # the person's edit of an output is left alone
    forced = life.revert_all_forced()
    assert forced.exit_code == 0, forced.output
    step("revert --all --force")
    assert revert_all_gives_back(life.people, life.settings.output.backup_dir) == []
    assert life.steps == 14 and life.violations == []
