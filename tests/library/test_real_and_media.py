"""Conformance on real phone files (skipped when absent), pixel access and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from daemon.files.errors import UnreadableFile
from daemon.files.exif import apple_content_identifier
from daemon.library import media, synth
from daemon.library.aae import read_aae
from daemon.library.motion import read_motion
from daemon.library.quicktime import read_mov_info
from daemon.library.stills import read_still_meta

from .conftest import FPS, moving_frames, real, texture


def test_real_iphone_content_identifier() -> None:
    meta = read_still_meta(real("iphone11pro_livephoto_still_IMG_2927.HEIC"))
    assert meta.exif is not None
    assert apple_content_identifier(meta.exif) == "1745E022-9712-43C7-B024-F308EC6413CB"


def test_real_iphone8_has_no_content_identifier() -> None:
    meta = read_still_meta(real("iphone8_livephoto_still_IMG_1034.heic"))
    assert meta.exif is not None and apple_content_identifier(meta.exif) is None


def test_real_aae_other_edits_without_keyframe() -> None:
    info = read_aae(real("ios_adjustments_other_edits_IMG_4120.AAE"))
    assert info.keyframe_time is None
    assert info.other_adjustments == ("Effect", "SmartTone", "SmartColor", "WhiteBalance", "Crop")


def test_real_galaxy_s22_video_decodes() -> None:
    path = real("samsung_s22_motionphoto.heic")
    found = read_motion(path, read_still_meta(path))
    assert found is not None and found.source == "mpvd"
    assert found.presentation_us == 2056590
    mov = read_mov_info(path, found.video_offset, found.video_length)
    assert mov.frame_count == 62 and (mov.width, mov.height) == (1440, 1080)
    frame = media.decode_frame_at(
        path, 2.0566, offset=found.video_offset, length=found.video_length
    )
    assert frame.shape[:2] in ((1080, 1440), (1440, 1080)) and frame.dtype == np.float32


def test_load_still_orientation_and_range(tmp_path: Path) -> None:
    rgb = texture(40, 60)
    img = Image.fromarray(rgb)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise for display
    img.save(tmp_path / "o.jpg", exif=exif.tobytes(), quality=95)
    arr = media.load_still(tmp_path / "o.jpg")
    assert arr.shape == (60, 40, 3) and arr.dtype == np.float32
    assert arr.min() >= 0.0 and arr.max() <= 1.0
    heic = synth.write_apple_still(tmp_path / "a.heic", rgb, "X", "heic")
    assert media.load_still(heic).shape == (40, 60, 3)


def test_load_still_refuses_bombs(tmp_path: Path) -> None:
    Image.fromarray(texture(100, 100)).save(tmp_path / "b.png")
    with pytest.raises(UnreadableFile, match="exceeds the limit"):
        media.load_still(tmp_path / "b.png", max_pixels=5000)


def test_decode_frame_at_picks_nearest(tmp_path: Path) -> None:
    frames = moving_frames()
    mov = synth.write_live_mov(tmp_path / "v.mov", frames, FPS, "X", 0.1)
    got = media.decode_frame_at(mov, 7 / FPS + 0.004)
    errors = [np.abs(got - f.astype(np.float32) / 255).mean() for f in frames]
    assert int(np.argmin(errors)) == 7
    mp4 = synth.encode_video(frames, FPS, "mp4")
    jpg = synth.write_google_motion_jpeg(tmp_path / "m.jpg", texture(48, 64), mp4, 0)
    off = jpg.stat().st_size - len(mp4)
    assert media.read_embedded_video(jpg, off, len(mp4)) == mp4
    emb = media.decode_frame_at(jpg, 3 / FPS, offset=off, length=len(mp4))
    errors = [np.abs(emb - f.astype(np.float32) / 255).mean() for f in frames]
    assert int(np.argmin(errors)) == 3


def test_cli_scan_dry_run_json(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from daemon.cli import app

    frames = moving_frames()
    synth.write_reselected_live_photo(tmp_path, "IMG_0042", frames, FPS, 2, 9)
    (tmp_path / "IMG_0099.JPG").write_bytes(b"")
    Image.fromarray(texture(48, 64)).save(tmp_path / "plain.jpg")
    result = CliRunner().invoke(app, ["scan", str(tmp_path), "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["assets"]
    kinds = sorted(r["kind"] for r in rows)
    assert kinds == ["apple", "unreadable"]
    apple = next(r for r in rows if r["kind"] == "apple")
    for field in ("reference", "video", "target", "t0", "t1", "reselected", "reason"):
        assert field in apple
    assert apple["reselected"] is True
    bad = next(r for r in rows if r["kind"] == "unreadable")
    assert bad["path"].endswith("IMG_0099.JPG") and bad["reason"]
