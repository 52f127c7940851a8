"""`lmd scan` (issue 13 items 5 and 8): a path that does not exist is named as such; the dry
run and the real run print one JSON shape, `{dry_run, assets, summary}`."""

from __future__ import annotations

import json
from pathlib import Path

from tests.foundation.lmd_entry import flat, run_lmd


def test_a_missing_path_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "some" / "path"
    done = run_lmd(tmp_path, "scan", str(missing))  # no library configured either
    assert done.returncode == 1
    assert flat(done.stderr) == f"lmd: {missing} does not exist"


def test_dry_run_and_real_run_share_one_json_shape(tmp_path: Path, configured: Path) -> None:
    dry = run_lmd(tmp_path, "scan", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    real = run_lmd(tmp_path, "scan", "--json")
    assert real.returncode == 0, real.stderr
    dry_doc, real_doc = json.loads(dry.stdout), json.loads(real.stdout)
    assert set(dry_doc) == set(real_doc) == {"dry_run", "assets", "summary"}
    assert (dry_doc["dry_run"], real_doc["dry_run"]) == (True, False)

    def by_key(doc: dict) -> dict[str, dict]:
        return {a["key"]: a for a in doc["assets"]}

    dry_assets, real_assets = by_key(dry_doc), by_key(real_doc)
    assert sorted(dry_assets) == sorted(real_assets) == ["2026/IMG_1201", "2026/IMG_1202"]
    for key, asset in real_assets.items():
        assert asset["action"] == "enqueued"
        assert dry_assets[key]["action"] is None
        assert {k: v for k, v in asset.items() if k != "action"} == {
            k: v for k, v in dry_assets[key].items() if k != "action"
        }
    for doc in (dry_doc, real_doc):
        assert doc["summary"]["assets_found"] == 2 and doc["summary"]["unreadable"] == 0
        assert doc["summary"]["root"] == str(tmp_path / "library")
    assert real_doc["summary"]["enqueued"] == 2
