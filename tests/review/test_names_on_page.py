"""A photo in a folder whose name is not UTF-8 (`album-\\xff\\xfe`, issue 11 item 2) is shown on
the review page escaped, as the CLI shows it: the grid, its detail view and /api/reviews all
answered 500 (UnicodeEncodeError: surrogates not allowed) for the whole library, because of that
one name."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from starlette.testclient import TestClient

from daemon.review.decisions import open_review_service
from daemon.review.web.app import build_app
from daemon.review.web.security import Guard
from tests.review.helpers import copy_library, scan_and_work, settings_for

ALBUM = os.fsdecode(b"album-\xff\xfe")


def test_a_name_that_is_not_utf8_is_shown_escaped(tmp_path: Path, source_library: Path) -> None:
    library = copy_library(source_library, tmp_path)
    shutil.move(library / "2026", library / ALBUM)
    settings = settings_for(tmp_path, library)
    store = scan_and_work(settings)
    service = open_review_service(settings, store)
    try:
        client = TestClient(build_app(settings, store, service, Guard(None, loopback_only=True)),
                            base_url="http://127.0.0.1:8765")
        grid = client.get("/?state=all")
        assert grid.status_code == 200
        assert grid.text.count("album-\\xff\\xfe/IMG_") >= 3  # each card names its photo
        job_id = store.list_reviews("all")[0].job_id
        detail = client.get(f"/job/{job_id}")
        assert detail.status_code == 200 and "album-\\xff\\xfe/IMG_" in detail.text
        listed = client.get("/api/reviews?state=all")
        assert listed.status_code == 200
        paths = [item["path"] for item in json.loads(listed.text)["items"]]
        assert len(paths) == 3
        assert all(Path(path).parent == library / ALBUM for path in paths)  # lossless
    finally:
        service.close()
        store.close()
