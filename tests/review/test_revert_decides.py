"""`lmd revert` of a published restoration is a decision the review knows: the review becomes
"rejected" (by revert), so the page and `lmd review list` stop calling a restoration that is
no longer in place "accepted", and a later reject is refused as already made (it said
"rejected: nothing was published")."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.cli import main
from daemon.store import open_store
from tests.review.helpers import cli_library, scan_and_work, settings_for


def test_a_reverted_restoration_is_rejected_by_revert(
    tmp_path: Path, source_library: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    library = cli_library(tmp_path, source_library, monkeypatch,
                          '[output]\nmode = "replace"\n')
    settings = settings_for(tmp_path, library, output={"mode": "replace"})
    scan_and_work(settings).close()
    first = library / "2026" / "IMG_E1201.HEIC"
    assert main(["revert", str(first)]) == 0
    with open_store(settings.database_url) as store:
        reviews = {Path(r.job.payload["target"]).name: r for r in store.list_reviews("all")}
    assert {name: r.state.value for name, r in reviews.items()} == {
        "IMG_E1201.HEIC": "rejected", "IMG_E1202.HEIC": "accepted", "IMG_E1203.HEIC": "accepted",
    }
    assert reviews["IMG_E1201.HEIC"].decided_by == "revert"
    capsys.readouterr()
    assert main(["review", "reject", str(reviews["IMG_E1201.HEIC"].job_id)]) == 1
    assert "already rejected" in capsys.readouterr().err
