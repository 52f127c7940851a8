"""Immich and names that are not UTF-8 (issue 11 item 2): a restored still in such a folder,
or with such a name, reaches Immich (the name escaped as lmd shows it, `caf\\xe9_lmd.HEIC`);
the upload of one died writing the request, and of the other after the upload, looking for
its original by a path JSON cannot carry ("delivery given up: UnicodeEncodeError")."""

from __future__ import annotations

import os
from pathlib import Path

from structlog.testing import capture_logs

from daemon.publish.outcome import JobOutcome
from tests.publish.immich_standin import ImmichStandIn
from tests.publish.test_immich import KEY, publisher


def _still(library: Path, folder: bytes, name: bytes) -> JobOutcome:
    where = library / os.fsdecode(folder)
    where.mkdir(parents=True)
    stem = os.fsdecode(name)
    (where / f"{stem}.HEIC").write_bytes(b"original " + name)
    (where / f"{stem}_lmd.HEIC").write_bytes(b"restored " + name)
    return JobOutcome(job_id=1, asset=f"{os.fsdecode(folder)}/{stem}",
                      original=where / f"{stem}.HEIC", output=where / f"{stem}_lmd.HEIC",
                      mode="sidecar-beside")


def test_stills_whose_names_are_not_utf8_are_uploaded(tmp_path: Path) -> None:
    library = tmp_path / "library"
    stills = [_still(library, b"album-\xff\xfe", b"IMG_0001"), _still(library, b"2026", b"caf\xe9")]
    with ImmichStandIn(api_key=KEY) as standin:
        original = standin.add_asset(b"original caf\xe9", "upload/caf.HEIC")
        pub = publisher(standin.url, library)
        with capture_logs() as logs:
            for still in stills:
                pub.publish(still)
            assert pub.outbox.wait_idle(timeout=20)
        pub.close()
        uploads = standin.calls("POST", "/api/assets")
        assert [u.files["assetData"][0] for u in uploads] == [
            "IMG_0001_lmd.HEIC", "caf\\xe9_lmd.HEIC"
        ]
        assert uploads[1].form["filename"] == "caf\\xe9_lmd.HEIC"
        (stack,) = standin.stacks  # the second still's original is in Immich: stacked
        assert stack["assets"][1]["id"] == original.id
    assert not [e for e in logs if e["log_level"] == "error"]
    assert sum("without a stack" in e["event"] for e in logs) == 1  # the first: no original
