"""`lmd revert --all --force` over a still replaced twice (the person exported a new version of
it in between) whose folder then moved: two records keep two originals of one still, and only the
newer record follows the still (the older one's output is gone from the library). The newer
original is the one put back; the older stays in its backup (soak finding: revert grouped the
records by the path each had named, so the older record, found at the still's new path, was put
back after the newer one)."""

from __future__ import annotations

from pathlib import Path

from daemon.output import iter_records
from daemon.store import open_store
from daemon.worker.records import follow
from tests.integrity.helpers import worker
from tests.integrity.invariants import digest, revert_all_gives_back
from tests.integrity.life import Life


def test_the_newer_original_of_a_still_replaced_twice_and_moved_is_put_back(
    tmp_path: Path,
) -> None:
    life = Life(tmp_path)
    life.store = store = open_store(life.settings.database_url)
    try:
        folder = life.add_photos(2)
        assert life.scan().enqueued == 2
        worker(life.settings, store).run_until_empty()
        [still, *_] = sorted(life.stills(replaced=True))
        first = life.people.files[str(still)]  # the person's first version of the still
        life.edit_target(still)  # a new version over lmd's output: new input
        assert life.scan().enqueued == 1
        worker(life.settings, store).run_until_empty()
        assert len([r for r in iter_records(life.settings.output.backup_dir)
                    if r.target == still]) == 2
        # the new name sorts before the old one ('-' < '/'), as a soak's renamed folder did
        old, _ = life.rename_folder(folder)
        life.scan()
        worker(life.settings, store).run_until_empty()
        assert life.verify("moved", drained=True) == []
        # the older record left naming the old path, as when the worker that would follow it
        # is killed first: nothing is at that path now
        [older] = [r for r in iter_records(life.settings.output.backup_dir)
                   if r.target.name == still.name and r.original.content_hash == first]
        follow(older, old / still.relative_to(folder))

        result = life.revert_all_forced()
        assert result.exit_code == 0, result.output
        assert revert_all_gives_back(life.people, life.settings.output.backup_dir) == []
        newer = life.people.files
        back = [Path(p) for p in newer if Path(p).name == still.name]
        assert back and all(digest(p) == newer[str(p)] for p in back)
    finally:
        store.close()


def test_a_newer_original_exported_after_the_mode_changed_is_kept_even_with_force(
    tmp_path: Path,
) -> None:
    """Replace mode, then sidecar mode, then the person exports a new version over lmd's output
    (lmd restores it as a sidecar: it is an input, the person's own). `revert --all --force`
    reverts edits of lmd's output, never a newer original: the still stays the person's new
    version, the older original stays in its backup (soak finding: it was put back over it)."""
    life = Life(tmp_path)
    life.store = store = open_store(life.settings.database_url)
    try:
        life.add_photos(2)
        assert life.scan().enqueued == 2
        worker(life.settings, store).run_until_empty()
        assert life.change_mode() == "sidecar"
        [still, *_] = sorted(life.stills(replaced=True))
        life.edit_target(still)
        life.scan()
        worker(life.settings, store).run_until_empty()
        assert life.verify("exported again", drained=True) == []
        newer = digest(still)

        result = life.revert_all_forced()
        assert result.exit_code == 0, result.output
        assert digest(still) == newer
        assert f"kept: {still}" in " ".join(result.output.split())
        assert revert_all_gives_back(life.people, life.settings.output.backup_dir) == []
    finally:
        store.close()
