"""A hook for a photo whose folder name is not UTF-8 (`album-\\xff\\xfe`, issue 11 item 2) runs
and receives the name exactly: it was never run ("delivery given up: UnicodeEncodeError:
surrogates not allowed", writing the JSON document for its stdin), for every photo of that
folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

from daemon.publish.hooks import run_hook
from daemon.publish.outcome import JobOutcome
from tests.publish.test_hooks import recorder

FOLDER = b"/library/album-\xff\xfe"


def test_a_name_that_is_not_utf8_reaches_the_hook_exactly(tmp_path: Path) -> None:
    original = Path(os.fsdecode(FOLDER + b"/IMG_E0001.HEIC"))
    job = JobOutcome(  # type: ignore[arg-type]
        job_id=7, asset=os.fsdecode(b"album-\xff\xfe/IMG_0001"), original=original,
        output=Path(os.fsdecode(FOLDER + b"/IMG_E0001_lmd.HEIC")), mode="sidecar-beside",
        event="success", error=None, restorer="guided",
    )
    dest = tmp_path / "seen.json"
    result = run_hook(recorder(dest), job, timeout=30)
    assert result.ok, result
    seen = json.loads(dest.read_text())
    assert seen["doc"] == job.to_document()
    assert os.fsencode(seen["doc"]["original"]) == FOLDER + b"/IMG_E0001.HEIC"
    assert os.fsencode(seen["env"]["LMD_ORIGINAL"]) == FOLDER + b"/IMG_E0001.HEIC"
    assert os.fsencode(seen["env"]["LMD_OUTPUT"]) == FOLDER + b"/IMG_E0001_lmd.HEIC"
