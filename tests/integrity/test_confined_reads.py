"""The worker reads only inside the library and its backups (issue 11 item 5): an input swapped
for a symbolic link out of the library between the scan and the work is refused with the
reason, never decoded; a redo still reads a replaced still's original from the backups (that
side is `test_redo.py`)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from daemon.scanner import run_scan
from daemon.settings import Settings
from daemon.store import JobState, open_store
from tests.integrity.helpers import Tinted, worker


def test_an_input_swapped_for_a_link_out_of_the_library_is_refused_not_read(
    settings: Settings, library: Path, tmp_path: Path
) -> None:
    store = open_store(settings.database_url)
    try:
        assert run_scan(settings, library, store=store).enqueued == 3
        job = store.list_jobs()[0]
        reference = Path(job.payload["reference"])
        # the same bytes and mtime outside the library: the content checks all pass, only
        # where the file lies tells it apart
        outside = tmp_path / "elsewhere" / reference.name
        outside.parent.mkdir()
        shutil.copy2(reference, outside)
        reference.unlink()
        os.symlink(outside, reference)

        restorer = Tinted(0.1)
        worker(settings, store, restorer=restorer).run_until_empty()

        refused = store.get_job(job.id)
        assert refused is not None
        assert refused.state == JobState.FAILED
        assert "out of the library" in (refused.last_error or "")
        # the other two jobs ran; the refused one never reached the restorer
        assert len(restorer.requests) == 2
        assert sum(j.state == JobState.SUCCEEDED for j in store.list_jobs()) == 2
    finally:
        store.close()
