"""write_image: format follows the extension, metadata survives (read back by exiftool)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from daemon.output import (
    TEMP_PREFIX,
    OutputError,
    apple_content_identifier,
    digest_file,
    read_metadata,
    read_provenance,
    write_image,
)

from .helpers import CID, EXIFTOOL, REAL, build_exif, gradient

PROVENANCE = {
    "restorer": "guided",
    "weightsDigest": "none",
    "t1": 1.25,
    "sources": {"reference": "ab" * 32, "target": "cd" * 32},
    "version": "0.1.0",
}


def exiftool_json(path: Path) -> dict:
    if EXIFTOOL is None:
        pytest.skip("exiftool not installed")
    out = subprocess.run(
        [EXIFTOOL, "-j", "-a", "-G1", "-struct", str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)[0]


def no_temp_left(directory: Path) -> bool:
    return not [p for p in directory.iterdir() if p.name.startswith(TEMP_PREFIX)]


@pytest.mark.parametrize(("name", "fmt"), [("IMG_E1234.HEIC", "HEIF"), ("IMG_E1234.JPG", "JPEG")])
def test_metadata_carried_over_and_read_by_exiftool(apple_source, tmp_path, name, fmt):
    like = apple_source(name, size=(40, 30))
    dest = tmp_path / "out" / name
    dest.parent.mkdir()
    rgb = gradient(48, 64)
    sig = write_image(dest, rgb, like=like, quality=90, xmp_provenance=PROVENANCE)

    assert sig.content_hash == digest_file(dest)
    assert sig.size == dest.stat().st_size
    assert sig.mtime_ns == dest.stat().st_mtime_ns
    assert no_temp_left(dest.parent)
    with Image.open(dest) as im:
        assert im.format == fmt
        assert im.size == (64, 48)
        decoded = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    assert np.abs(decoded - rgb).mean() < 0.03

    meta = read_metadata(dest)
    assert apple_content_identifier(meta.exif) == CID
    prov = read_provenance(meta.xmp)
    assert prov is not None
    assert prov["restorer"] == "guided"
    assert prov["sources"] == {"reference": "ab" * 32, "target": "cd" * 32}

    tags = exiftool_json(dest)
    cid = tags.get("Apple:MediaGroupUUID") or tags.get("Apple:ContentIdentifier")
    assert cid == CID
    assert tags["IFD0:Make"] == "Apple"
    assert tags["IFD0:Orientation"] == "Horizontal (normal)"
    assert tags["ExifIFD:ExifImageWidth"] == 64
    assert tags["ExifIFD:ExifImageHeight"] == 48
    assert tags["ICC-header:ProfileClass"]  # ICC profile present
    assert tags["ICC_Profile:ProfileDescription"] == "sRGB built-in"
    assert tags["XMP-xmp:CreatorTool"] == "13.4.1"
    assert tags["XMP-xmp:Rating"] == 4
    assert tags["XMP-dc:Title"] == "Beach"
    # 6 in the source: reset to 1 (JPEG), or removed by pillow-heif's reader (HEIC)
    assert tags.get("XMP-tiff:Orientation", "Horizontal (normal)") == "Horizontal (normal)"
    assert "XMP-GCamera:MotionPhoto" not in tags  # the output has no embedded video
    assert tags["XMP-lmd:Restorer"] == "guided"


def test_orientation_reset_only_when_upright(apple_source, tmp_path):

    like = tmp_path / "rot.jpg"
    Image.new("RGB", (30, 40)).save(like, exif=build_exif(width=30, height=40, orientation=6))
    kept = tmp_path / "kept.jpg"
    write_image(kept, gradient(40, 30), like=like, upright=False)
    reset = tmp_path / "reset.jpg"
    write_image(reset, gradient(40, 30), like=like)
    with Image.open(kept) as a, Image.open(reset) as b:
        assert a.getexif()[0x0112] == 6
        assert b.getexif()[0x0112] == 1


def test_beside_copy_drops_live_identity_but_keeps_the_rest(apple_source, tmp_path):
    like = apple_source("IMG_E1234.JPG")
    dest = tmp_path / "IMG_E1234_lmd.JPG"
    write_image(dest, gradient(), like=like, keep_live_identity=False)
    meta = read_metadata(dest)
    assert apple_content_identifier(meta.exif) is None
    assert CID.encode() not in dest.read_bytes()
    with Image.open(dest) as im:
        assert im.getexif()[0x010F] == "Apple"


def test_png_and_uint8_input(tmp_path):
    dest = tmp_path / "x.png"
    rgb = (gradient() * 255).astype(np.uint8)
    write_image(dest, rgb, xmp_provenance={"restorer": "guided"})
    with Image.open(dest) as im:
        assert np.array_equal(np.asarray(im), rgb)
    assert read_provenance(read_metadata(dest).xmp) == {"restorer": "guided"}


@pytest.mark.parametrize(
    "bad",
    [np.zeros((4, 4), np.float32), np.zeros((4, 4, 4), np.uint8), np.full((4, 4, 3), np.nan)],
)
def test_bad_arrays_are_refused_without_a_file(tmp_path, bad):
    with pytest.raises(OutputError):
        write_image(tmp_path / "x.jpg", bad)
    assert list(tmp_path.iterdir()) == []


def test_unsupported_extension(tmp_path):
    with pytest.raises(OutputError, match="unsupported output extension"):
        write_image(tmp_path / "x.tiff", gradient())


def test_overwrites_atomically_and_keeps_existing_on_missing_dir(tmp_path):
    dest = tmp_path / "a.jpg"
    write_image(dest, gradient())
    first = digest_file(dest)
    write_image(dest, gradient()[::-1].copy())
    assert digest_file(dest) != first
    with pytest.raises(OutputError, match="does not exist"):
        write_image(tmp_path / "missing" / "a.jpg", gradient(), create_dirs=False)
    write_image(tmp_path / "tree" / "2024" / "06" / "a.jpg", gradient())
    assert (tmp_path / "tree" / "2024" / "06" / "a.jpg").is_file()


def real(name: str) -> Path:
    path = REAL / name
    if not path.is_file():
        pytest.skip(f"real fixture {name} not available")
    return path


def test_real_iphone_heic_keeps_content_identifier(tmp_path):
    like = real("iphone11pro_livephoto_still_IMG_2927.HEIC")
    dest = tmp_path / "IMG_2927.HEIC"
    write_image(dest, gradient(48, 64), like=like, xmp_provenance={"restorer": "guided"})
    meta = read_metadata(dest)
    assert apple_content_identifier(meta.exif) == "1745E022-9712-43C7-B024-F308EC6413CB"
    tags = exiftool_json(dest)
    assert tags["ICC_Profile:ProfileDescription"] == "Display P3"
    assert tags["XMP-xmp:CreatorTool"] == "13.4.1"
    assert tags["ExifIFD:ExifImageWidth"] == 64


def test_real_motion_photo_xmp_loses_video_directory(tmp_path):
    like = real("samsung_s22_motionphoto.heic")
    dest = tmp_path / "motion.heic"
    write_image(dest, gradient(), like=like)
    xmp = read_metadata(dest).xmp or b""
    assert b"MotionPhoto" not in xmp
    assert b"Container" not in xmp.replace(b"xmlns:Container", b"")
    tags = exiftool_json(dest)
    assert "XMP-GCamera:MotionPhoto" not in tags
