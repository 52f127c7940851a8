"""Pages of restorations: the store lists exact pages with both filters in the query (SQLite
and PostgreSQL), and `lmd review list --limit/--offset` pages the same list. (The page in the
browser: tests/review/test_browser.py, `test_grid_pages_keep_the_filters`.)"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.cli import main
from daemon.store import JobStore, open_store
from tests.store.store_helpers import make_spec


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'lmd.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_url")
    with open_store(url) as opened:
        yield opened


def finished(store: JobStore, key: str, flags: list[str]) -> int:
    """A restoration held for review with `flags`, as the worker records it."""
    job_id = store.enqueue(make_spec(key=key)).job_id
    job = store.claim("w", 60)
    assert job is not None and job.id == job_id
    store.record_review(
        job_id, staged=True, flags=flags, face_check=None, flow_confidence=0.8,
        like_role="target", staged_signature={"file": "a.png", "content_hash": "x", "size": 1},
        worker="w",
    )
    store.succeed(job_id, "w", None, None, {})
    return job_id


def seed(store: JobStore) -> dict[str, list[int]]:
    """Seven restorations, every third flagged; ids newest first (the list's order)."""
    ids = [
        finished(store, f"lib/{n}", ["identity drift"] if n % 3 == 0 else []) for n in range(7)
    ]
    order = [r.job_id for r in store.list_reviews("all", limit=None)]
    assert sorted(order) == sorted(ids)
    flagged = {ids[n] for n in range(7) if n % 3 == 0}
    return {
        "all": order,
        "flagged": [i for i in order if i in flagged],
        "plain": [i for i in order if i not in flagged],
    }


def pages(store: JobStore, flagged: bool | None, per: int) -> list[list[int]]:
    out, offset = [], 0
    while page := store.list_reviews("awaiting", flagged=flagged, limit=per, offset=offset):
        out.append([r.job_id for r in page])
        offset += per
    return out


def test_pages_are_exact_with_the_flag_filter_in_the_query(store: JobStore) -> None:
    ids = seed(store)
    assert pages(store, None, 3) == [ids["all"][0:3], ids["all"][3:6], ids["all"][6:7]]
    # the filter before the page, not after it: two full pages of unflagged ones
    assert pages(store, False, 2) == [ids["plain"][0:2], ids["plain"][2:4]]
    assert pages(store, True, 2) == [ids["flagged"][0:2], ids["flagged"][2:3]]
    assert store.count_reviews("awaiting") == 7
    assert store.count_reviews("awaiting", flagged=True) == 3
    assert store.count_reviews("accepted") == 0
    assert store.count_reviews("all", flagged=False) == 4


def test_review_list_pages_through_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'state' / 'lmd.sqlite3'}"
    for name in ("LMD_CONFIG", "LMD_REVIEW__TOKEN", "LMD_LIBRARY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LMD_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("LMD_DATABASE_URL", url)
    with open_store(url) as store:
        ids = seed(store)
    capsys.readouterr()  # the migration's log line

    def listed(*args: str) -> dict:  # type: ignore[type-arg]
        assert main(["review", "list", "--json", *args]) == 0
        return json.loads(capsys.readouterr().out)

    first = listed("--limit", "3")
    assert [i["job_id"] for i in first["items"]] == ids["all"][0:3]
    assert first["total"] == 7 and first["offset"] == 0 and first["next_offset"] == 3
    last = listed("--limit", "3", "--offset", "6")
    assert [i["job_id"] for i in last["items"]] == ids["all"][6:7]
    assert last["next_offset"] is None
    flagged = listed("--flagged", "--limit", "2", "--offset", "2")
    assert [i["job_id"] for i in flagged["items"]] == ids["flagged"][2:3]
    assert flagged["total"] == 3
    assert main(["review", "list", "--limit", "2"]) == 0
    table, err = capsys.readouterr()
    assert "2 of 7 shown; the next: --offset 2" in err and len(table.splitlines()) == 3
    assert main(["review", "list", "--limit", "0"]) == 2  # a usage error, not a traceback
