"""The daemon resumes the publish outbox at start: an upload to Immich that an earlier run
left waiting in the job database is made when the worker's review gate starts, before any new
job is published."""

from __future__ import annotations

import time
from pathlib import Path

from daemon.review.gate import ReviewGate
from daemon.store import open_store
from daemon.store.outbox import OutboxState
from tests.publish.immich_standin import ImmichStandIn
from tests.review.helpers import settings_for


def test_a_delivery_left_by_an_earlier_run_is_made_at_start(tmp_path: Path) -> None:
    library = tmp_path / "library"
    library.mkdir()
    (library / "IMG_0001.HEIC").write_bytes(b"original key photo bytes")
    (library / "IMG_0001_lmd.HEIC").write_bytes(b"restored still bytes")
    with ImmichStandIn(api_key="k") as immich:
        immich.add_asset(b"original key photo bytes", "upload/IMG_0001.HEIC")
        settings = settings_for(tmp_path, library, immich={"url": immich.url, "api_key": "k"})
        payload = {
            "job_id": 7,
            "original": str(library / "IMG_0001.HEIC"),
            "output": str(library / "IMG_0001_lmd.HEIC"),
        }
        with open_store(settings.database_url) as earlier:  # the run that stopped
            earlier.add_outbox("immich", "immich.upload", payload)
        with open_store(settings.database_url) as store:
            gate = ReviewGate(settings, store)
            deadline = time.monotonic() + 20
            while store.list_outbox(OutboxState.PENDING) and time.monotonic() < deadline:
                time.sleep(0.02)
            gate.after.close(5)
            (done,) = store.list_outbox()
            assert done.state == OutboxState.DELIVERED
        (upload,) = immich.calls("POST", "/api/assets")
        assert upload.files["assetData"] == ("IMG_0001_lmd.HEIC", b"restored still bytes")
        assert len(immich.stacks) == 1
