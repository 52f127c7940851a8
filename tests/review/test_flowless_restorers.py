"""A restorer that aligns nothing (bicubic, sharpen: the ones `lmd review redo` offers) has no
flow confidence, not a flow confidence of 0: its restorations are not flagged "low flow
confidence (0.00)" (which held every one of them for review with review off, since they do not
blend by confidence), and `lmd restore` does not warn that "the scene changed too much"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.baselines import BicubicRestorer
from daemon.cli import main
from daemon.store.review import ReviewState
from tests.review.helpers import copy_library, scan_and_work, settings_for


def test_no_low_flow_flag_for_a_restorer_without_flow(
    tmp_path: Path, source_library: Path
) -> None:
    settings = settings_for(tmp_path, copy_library(source_library, tmp_path))
    store = scan_and_work(settings, restorer=BicubicRestorer())
    try:
        reviews = store.list_reviews("all")
    finally:
        store.close()
    assert len(reviews) == 3
    assert [(r.flags, r.flow_confidence, r.state) for r in reviews] == [
        ([], None, ReviewState.ACCEPTED)
    ] * 3


def test_lmd_restore_with_bicubic_reports_no_flow(
    tmp_path: Path, source_library: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("LMD_CONFIG", raising=False)
    monkeypatch.setenv("LMD_STATE_DIR", str(tmp_path / "state"))
    folder = source_library / "2026"
    for as_json in (True, False):
        out = tmp_path / f"restored-{as_json}.png"
        code = main(["--config", "/dev/null", "restore", "--restorer", "bicubic",
                     "--reference", str(folder / "IMG_1201.HEIC"),
                     "--frame", str(folder / "IMG_E1201.HEIC"), "-o", str(out)]
                    + (["--json"] if as_json else []))
        stdout, stderr = capsys.readouterr()
        assert code == 0, stderr
        assert "flow confidence" not in stderr
        if as_json:
            doc = json.loads(stdout)
            assert (doc["flow_confidence"], doc["warnings"]) == (None, [])
        else:
            assert "flow confidence" not in stdout and "no flow" in stdout
