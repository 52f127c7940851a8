"""`lmd status --json` counts restorations by review state (`reviews`): with `[review]
required = true` every job reads "succeeded" while its restoration waits in staging, and
nothing in the status said that anything was waiting for a person."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daemon.cli import main
from tests.review.helpers import cli_library, scan_and_work, settings_for


def test_status_counts_what_awaits_review(
    tmp_path: Path, source_library: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    library = cli_library(tmp_path, source_library, monkeypatch,
                          '[review]\nrequired = true\n')
    scan_and_work(settings_for(tmp_path, library, review={"required": True})).close()
    assert main(["review", "accept", "1"]) == 0
    capsys.readouterr()
    assert main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["jobs"]["succeeded"] == 3
    assert status["reviews"] == {"awaiting": 2, "accepted": 1, "rejected": 0}
    assert status["review_required"] is True
    # the human view says it too, on a line of its own
    assert main(["status"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "reviews: 2 awaiting, 1 accepted, 0 rejected (review required)" in lines
    # nothing left waiting: with review required the line stays (the counts alone read as
    # review off)
    assert main(["review", "accept", "--all"]) == 0
    capsys.readouterr()
    assert main(["status"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "reviews: 0 awaiting, 3 accepted, 0 rejected (review required)" in lines


def test_status_has_no_review_line_when_review_is_not_in_use(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Review off: every restoration is published directly ('accepted' by auto); a line
    saying so on every status would be noise."""
    from daemon.cli.status_view import render_status

    render_status({"jobs": {"succeeded": 3}, "reviews": {"awaiting": 0, "accepted": 3,
                                                          "rejected": 0},
                   "review_required": False})
    out = capsys.readouterr().out
    assert "succeeded" in out and "review" not in out
