"""PhotoPrism is told of a folder whose name is not UTF-8 (issue 11 item 2) through the nearest
folder above it that JSON can name (PhotoPrism indexes below the path it is given): the
delivery used to die writing the request ("UnicodeEncodeError: surrogates not allowed"), so
PhotoPrism never learnt of the photo."""

from __future__ import annotations

import os
from pathlib import Path

from tests.publish.photoprism_standin import PhotoPrismStandIn
from tests.publish.test_photoprism import TOKEN, outcome, publisher


def test_a_folder_json_cannot_name_is_indexed_through_its_parent(tmp_path: Path) -> None:
    album = os.fsdecode(b"album-\xff\xfe")
    with PhotoPrismStandIn(token=TOKEN) as standin:
        pub = publisher(standin.url, tmp_path)
        pub.publish(outcome(tmp_path / "2026" / album / "trip" / "IMG_E0001_lmdr.HEIC"))
        pub.publish(outcome(tmp_path / album / "IMG_E0002_lmdr.HEIC"))
        assert pub.outbox.wait_idle(timeout=20)
        pub.close()
        assert standin.indexed == ["2026", ""]
