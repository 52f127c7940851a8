"""The fixture builders write files that real tools (exiftool, PyAV) read as intended."""

from __future__ import annotations

import base64
import json
import zlib
from pathlib import Path

import av
import pytest

from daemon.library import synth

from .conftest import FPS, exiftool_json, texture

CID = "1A2B3C4D-1111-2222-3333-444455556666"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from .conftest import moving_frames

    d = tmp_path_factory.mktemp("synth")
    frames = moving_frames()
    rgb = texture(192, 256, seed=3)
    mp4 = synth.encode_video(frames, FPS, "mp4")
    return {
        "heic": synth.write_apple_still(d / "IMG_0001.HEIC", rgb, CID, "heic"),
        "jpeg": synth.write_apple_still(d / "IMG_0002.JPG", rgb, CID, "jpeg"),
        "mov": synth.write_live_mov(d / "IMG_0001.MOV", frames, FPS, CID, 0.2),
        "aae": synth.write_aae(d / "IMG_0001.AAE", 0.3, ["Crop"]),
        "google": synth.write_google_motion_jpeg(d / "PXL_1.MP.jpg", rgb, mp4, 133000),
        "samsung": synth.write_samsung_seft_jpeg(d / "SAM_1.jpg", rgb, mp4),
        "mpvd": synth.write_heic_mpvd(d / "SAM_2.heic", rgb, mp4, 100000),
        "mp4_len": Path(str(len(mp4))),
    }


def test_apple_stills_carry_content_identifier(built: dict[str, Path]) -> None:
    rows = exiftool_json(
        built["heic"], built["jpeg"], args=("-MediaGroupUUID", "-ContentIdentifier")
    )
    for row in rows:
        value = row.get("Apple:MediaGroupUUID") or row.get("Apple:ContentIdentifier")
        assert value == CID, row


def test_mov_content_identifier_and_still_time(built: dict[str, Path]) -> None:
    (row,) = exiftool_json(built["mov"], args=("-ee", "-n"))
    assert row["Keys:ContentIdentifier"] == CID
    # exiftool sees the timed metadata sample but ignores the edit list (formats page 1.2).
    assert any(k.endswith("StillImageTime") and v == -1 for k, v in row.items()), row
    with av.open(str(built["mov"])) as c:
        assert c.metadata["com.apple.quicktime.content.identifier"] == CID
        packets = [p for p in c.demux(c.streams.data[0]) if p.size]
        assert len(packets) == 1
        assert float(packets[0].pts * packets[0].time_base) == pytest.approx(0.2, abs=1e-3)
        assert bytes(packets[0]) == b"\x00\x00\x00\x09\x00\x00\x00\x01\xff"


def test_aae_is_a_plist_exiftool_reads(built: dict[str, Path]) -> None:
    (row,) = exiftool_json(built["aae"], args=("-b",))
    assert row["XML:AdjustmentFormatIdentifier"] == "com.apple.photo"
    data = base64.b64decode(row["XML:AdjustmentData"].split(":", 1)[1])
    doc = json.loads(zlib.decompress(data, -zlib.MAX_WBITS))
    (key,) = [a for a in doc["adjustments"] if a["identifier"] == "LivePhotoKeyFrame"]
    time = key["settings"]["time"]
    assert time["value"] / time["timescale"] == pytest.approx(0.3)
    assert [a["identifier"] for a in doc["adjustments"]] == ["Crop", "LivePhotoKeyFrame"]


def test_google_motion_photo(built: dict[str, Path]) -> None:
    (row,) = exiftool_json(built["google"], args=("-n", "-struct"))
    assert row["XMP-GCamera:MotionPhoto"] == 1
    assert row["XMP-GCamera:MotionPhotoPresentationTimestampUs"] == 133000
    items = [entry["Item"] for entry in row["XMP-Container:Directory"]]
    assert [i["Semantic"] for i in items] == ["Primary", "MotionPhoto"]
    assert items[1]["Length"] == int(str(built["mp4_len"]))
    # media3's arithmetic from EOF lands on the MP4's ftyp box.
    data = built["google"].read_bytes()
    assert data[-items[1]["Length"] :][4:8] == b"ftyp"


def test_samsung_trailer(built: dict[str, Path]) -> None:
    (row,) = exiftool_json(built["samsung"], args=("-b",))
    assert row["Samsung:EmbeddedVideoType"] == "MotionPhoto_Data"
    assert "EmbeddedVideoFile" in str(row.keys())


def test_heic_mpvd(built: dict[str, Path]) -> None:
    (row,) = exiftool_json(built["mpvd"], args=("-n",))
    assert row["XMP-GCamera:MotionPhoto"] == 1
    video = row["QuickTime:MotionPhotoVideo"]
    assert str(len_of(video)) == str(built["mp4_len"])


def len_of(binary_marker: str) -> int:
    # exiftool prints "(Binary data N bytes, use -b option to extract)"
    return int(binary_marker.split()[2])
