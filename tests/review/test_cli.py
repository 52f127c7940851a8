"""`lmd review list|accept|reject|serve` through the real entry point, on a worked library."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daemon.cli import main
from tests.review.helpers import copy_library, scan_and_work, settings_for


@pytest.fixture
def configured(tmp_path: Path, source_library: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A library scanned and worked with review required; LMD_CONFIG names its config."""
    library = copy_library(source_library, tmp_path)
    config = tmp_path / "lmd.toml"
    config.write_text(
        f'library = "{library}"\nstate_dir = "{tmp_path / "state"}"\n'
        '[watcher]\nmode = "off"\n[review]\nrequired = true\n'
    )
    for name in ("LMD_REVIEW__TOKEN", "LMD_STATE_DIR", "LMD_DATABASE_URL", "LMD_LIBRARY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LMD_CONFIG", str(config))
    settings = settings_for(tmp_path, library, review={"required": True})
    scan_and_work(settings).close()
    return tmp_path


def lmd(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_accept_reject_through_the_command_line(
    configured: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = lmd(capsys, "review", "list", "--json")
    assert code == 0
    listed = json.loads(out)
    ids = sorted(item["job_id"] for item in listed["items"])
    assert len(ids) == 3 and {item["state"] for item in listed["items"]} == {"awaiting"}
    assert listed["counts"]["awaiting"] == 3
    first, second, _third = ids

    code, out, _ = lmd(capsys, "review", "accept", str(first))
    assert code == 0 and f"accepted: job {first}" in out
    code, _, err = lmd(capsys, "review", "accept", str(first))
    assert code == 1 and "already accepted" in err
    code, out, _ = lmd(capsys, "review", "reject", str(second), "--json")
    assert code == 0 and json.loads(out)["items"][0]["state"] == "rejected"
    code, out, _ = lmd(capsys, "review", "accept", "--all")
    assert code == 0

    code, out, _ = lmd(capsys, "review", "list", "--state", "rejected", "--json")
    assert [item["job_id"] for item in json.loads(out)["items"]] == [second]
    code, out, _ = lmd(capsys, "review", "list", "--state", "awaiting", "--json")
    assert json.loads(out)["items"] == []
    outputs = sorted(p.name for p in (configured / "state" / "restored").rglob("*.HEIC"))
    assert len(outputs) == 2  # the two accepted ones, not the rejected one


def test_usage_errors_and_a_refused_bind(
    configured: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert lmd(capsys, "review", "accept")[0] == 2  # neither IDs nor --all
    assert lmd(capsys, "review", "list", "--state", "bogus")[0] == 2
    code, _, err = lmd(capsys, "review", "serve", "--host", "0.0.0.0")
    assert code == 1 and "[review] token" in err


def test_refusals_are_counted_in_plain_words(
    configured: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The closing line of a refusal names the decision as English does ('redone', not
    'redoed')."""
    _, out, _ = lmd(capsys, "review", "list", "--json")
    first = min(item["job_id"] for item in json.loads(out)["items"])
    code, _, err = lmd(capsys, "review", "redo", str(first), "--restorer", "guided")
    assert code == 1 and "cannot redo with 'guided'" in err
    assert "lmd: 1 of 1 could not be redone" in err
    assert lmd(capsys, "review", "reject", str(first))[0] == 0
    code, _, err = lmd(capsys, "review", "reject", str(first))
    assert code == 1 and "lmd: 1 of 1 could not be rejected" in err
