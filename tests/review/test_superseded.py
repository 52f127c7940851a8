"""A restoration waiting for review whose job a newer one superseded (the photo was edited
again since) is stale: accepting it would publish an output of inputs that are gone. `lmd
review accept` refuses it and says which job superseded it, `accept --all` leaves it out, and
`lmd review list` and the page show it as superseded."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from starlette.testclient import TestClient

from daemon.cli import main
from daemon.files.exif import apple_content_identifier
from daemon.library.media import load_still
from daemon.library.synth import write_apple_still
from daemon.review.decisions import open_review_service
from daemon.review.web.app import build_app
from daemon.review.web.security import Guard
from daemon.scanner import run_scan
from daemon.store import open_store
from tests.review.helpers import cli_library, scan_and_work, settings_for


def _edit_again(target: Path) -> None:
    """The person edits the photo once more: the same still, a little brighter."""
    from PIL import Image
    from pillow_heif import register_heif_opener

    register_heif_opener()
    with Image.open(target) as img:
        exif = img.info.get("exif")
    cid = apple_content_identifier(exif[6:] if exif and exif.startswith(b"Exif") else exif)
    pixels = (load_still(target) * 255).astype(np.uint8)
    brighter = np.clip(pixels.astype(np.int16) + 6, 0, 255).astype(np.uint8)
    write_apple_still(target, brighter, cid or "X", "heic")


def lmd(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_superseded_restoration_cannot_be_accepted(
    tmp_path: Path, source_library: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    library = cli_library(tmp_path, source_library, monkeypatch,
                          '[review]\nrequired = true\n')
    settings = settings_for(tmp_path, library, review={"required": True})
    with scan_and_work(settings) as store:
        stale = min(j.id for j in store.list_jobs())
        _edit_again(Path(store.get_job(stale).payload["target"]))
        assert run_scan(settings, library, store=store).enqueued == 1
        newer = store.get_job(stale).superseded_by
        assert newer is not None and store.get_job(newer).state == "pending"

    code, _, err = lmd(capsys, "review", "accept", str(stale))
    assert code == 1 and f"superseded by job {newer}" in " ".join(err.split())
    code, out, _ = lmd(capsys, "review", "list", "--json")
    items = {item["job_id"]: item for item in json.loads(out)["items"]}
    assert items[stale]["state"] == "awaiting" and items[stale]["superseded_by"] == newer
    code, out, _ = lmd(capsys, "review", "list")
    (line,) = [row for row in out.splitlines() if row.split("\t")[0].strip() == str(stale)]
    assert f"superseded by job {newer}" in line

    code, out, _ = lmd(capsys, "review", "accept", "--all", "--json")
    assert code == 0
    accepted = sorted(item["job_id"] for item in json.loads(out)["items"])
    with open_store(settings.database_url) as store:
        service = open_review_service(settings, store)
        try:
            client = TestClient(
                build_app(settings, store, service, Guard(None, loopback_only=True)),
                base_url="http://127.0.0.1:8765",
            )
            grid = client.get("/?state=all").text
            assert f"superseded by job {newer}" in grid
            # no bulk-select box on its card: bulk accept would only be refused
            assert not re.search(rf'class="pick" value="{stale}"', grid)
            detail = client.get(f"/job/{stale}").text
            assert f"superseded by job {newer}" in detail
            assert re.search(r'id="accept"[^>]*disabled', detail)
        finally:
            service.close()
        assert accepted == sorted(j.id for j in store.list_jobs(state="succeeded") if j.id != stale)
        assert store.get_review(stale).state.value == "awaiting"
        assert store.get_job(stale).output_path is None  # nothing stale was published
