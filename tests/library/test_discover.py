"""Grouping and the reselection decision on synthetic libraries."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from daemon.library import synth
from daemon.library.asset import LiveAsset, Platform
from daemon.library.cache import DictAssetCache
from daemon.library.discover import discover
from daemon.library.walk import Unreadable

from .conftest import FPS, moving_frames, texture


def scan(root: Path, **kw: object) -> list:
    return list(discover(root, **kw))  # type: ignore[arg-type]


def only_asset(root: Path, **kw: object) -> LiveAsset:
    (item,) = scan(root, **kw)
    assert isinstance(item, LiveAsset), item
    return item


def test_reselected_with_aae(tmp_path: Path, frames: list) -> None:
    paths = synth.write_reselected_live_photo(tmp_path / "2024", "IMG_1234", frames, FPS, 3, 9)
    a = only_asset(tmp_path)
    assert a.key == "2024/IMG_1234"
    assert a.platform is Platform.APPLE
    assert a.reference == paths["reference"] and a.video == paths["video"]
    assert a.target == paths["edited"]
    assert a.t0 == pytest.approx(3 / FPS, abs=1e-3)
    assert a.t1 == pytest.approx(9 / FPS, abs=1e-3)
    assert a.reselected and a.restorable and a.reason is None
    assert set(a.signatures) == {"reference", "video", "target", "aae"}
    assert a.signatures["video"].size == paths["video"].stat().st_size
    assert a.signatures["video"].content_hash.startswith("blake3:")
    assert a.sidecars == (paths["aae"],)


def test_reselected_by_frame_matching_without_aae(tmp_path: Path, frames: list) -> None:
    synth.write_reselected_live_photo(tmp_path, "IMG_0007", frames, FPS, 2, 8, with_aae=False)
    a = only_asset(tmp_path)
    assert a.reselected
    assert a.t1 == pytest.approx(8 / FPS, abs=1e-3)


def test_unedited_live_photo_is_not_reselected(tmp_path: Path, frames: list) -> None:
    synth.write_reselected_live_photo(
        tmp_path, "IMG_0001", frames, FPS, 4, 4, with_aae=False, with_edited=False
    )
    a = only_asset(tmp_path)
    assert not a.reselected and a.reason is None
    assert a.t0 == a.t1 == pytest.approx(4 / FPS, abs=1e-3)
    assert a.target is None


def test_edited_still_at_same_frame_is_not_reselected(tmp_path: Path, frames: list) -> None:
    synth.write_reselected_live_photo(tmp_path, "IMG_0002", frames, FPS, 5, 5, with_aae=False)
    assert not only_asset(tmp_path).reselected


def test_other_edits_make_it_not_restorable(tmp_path: Path, frames: list) -> None:
    synth.write_reselected_live_photo(
        tmp_path, "IMG_0003", frames, FPS, 2, 9, other_adjustments=("Crop", "AutoLoop")
    )
    a = only_asset(tmp_path)
    assert a.reselected and not a.restorable
    assert a.reason == "edited beyond the key frame: AutoLoop, Crop"
    assert a.other_adjustments == ("Crop", "AutoLoop")


def test_aae_keyframe_contradicted_by_edited_still(tmp_path: Path, frames: list) -> None:
    paths = synth.write_reselected_live_photo(tmp_path, "IMG_0004", frames, FPS, 2, 2)
    synth.write_aae(paths["edited"].with_name("IMG_0004.AAE"), 9 / FPS)  # says frame 9
    a = only_asset(tmp_path)
    assert not a.reselected
    assert a.reason == "edited still does not show the reselected frame"


def test_content_identifier_mismatch(tmp_path: Path, frames: list) -> None:
    synth.write_apple_still(
        tmp_path / "IMG_0005.HEIC", texture(96, 128), "A" * 8 + "-0000-0000-0000-" + "0" * 12
    )
    synth.write_live_mov(
        tmp_path / "IMG_0005.MOV", frames, FPS, "B" * 8 + "-0000-0000-0000-" + "0" * 12, 0.1
    )
    a = only_asset(tmp_path)
    assert a.reason == "ContentIdentifier of the still and the video differ"


def test_pairing_repaired_by_content_identifier(tmp_path: Path, frames: list) -> None:
    cid = "0F0F0F0F-1234-5678-9ABC-DEF012345678"
    synth.write_apple_still(tmp_path / "4E1C2D3A.heic", texture(96, 128), cid)
    synth.write_live_mov(tmp_path / "4E1C2D3A_3.mov", frames, FPS, cid, 0.1)
    a = only_asset(tmp_path)
    assert a.content_identifier == cid and a.video == tmp_path / "4E1C2D3A_3.mov"


@pytest.mark.parametrize(
    ("still", "video", "edited"),
    [
        ("IMG_1000.HEIC", "IMG_1000_HEVC.MOV", "IMG_1000-adjusted.HEIC"),  # icloudpd
        ("IMG_1001.heic", "IMG_1001.mov", "IMG_1001_edited.heic"),  # osxphotos
        ("IMG_1002.HEIC", "IMG_1002.MOV", "IMG_1002_edited.HEIC"),  # PhotoSync
        ("IMG_1003.JPG", "IMG_1003.MOV", "IMG_E1003.JPG"),  # Image Capture, Most Compatible
    ],
)
def test_naming_schemes(tmp_path: Path, still: str, video: str, edited: str) -> None:
    frames = moving_frames()
    paths = synth.write_reselected_live_photo(
        tmp_path / "src",
        "IMG_9999",
        frames,
        FPS,
        1,
        10,
        with_aae=False,
        still_format="jpeg" if still.endswith("JPG") else "heic",
    )
    lib = tmp_path / "lib"
    lib.mkdir()
    shutil.copy(paths["reference"], lib / still)
    shutil.copy(paths["video"], lib / video)
    shutil.copy(paths["edited"], lib / edited)
    a = only_asset(lib)
    assert (a.reference.name, a.video.name, a.target.name) == (still, video, edited)
    assert a.reselected


def test_motion_photos_are_single_files(tmp_path: Path, frames: list) -> None:
    mp4 = synth.encode_video(frames, FPS, "mp4")
    rgb = texture(192, 256)
    synth.write_google_motion_jpeg(tmp_path / "PXL_1.MP.jpg", rgb, mp4, 200000)
    synth.write_samsung_seft_jpeg(tmp_path / "SAM_1.jpg", rgb, mp4)
    synth.write_heic_mpvd(tmp_path / "SAM_2.heic", rgb, mp4)
    found = {a.key: a for a in scan(tmp_path)}
    assert set(found) == {"PXL_1", "SAM_1", "SAM_2"}
    for a in found.values():
        assert a.platform is Platform.ANDROID_MOTION and not a.reselected
        assert a.video == a.reference and a.video_length == len(mp4)
        assert a.reference.read_bytes()[a.video_offset : a.video_offset + a.video_length] == mp4
    assert found["PXL_1"].t0 == pytest.approx(0.2)
    # unset timestamp: the frame just before half the duration (12 frames at 30 fps)
    assert found["SAM_2"].t0 == pytest.approx(5 / FPS, abs=1e-3)


def test_motion_photo_with_exported_lq_frame(tmp_path: Path, frames: list) -> None:
    mp4 = synth.encode_video(frames, FPS, "mp4")
    ref = synth._resize(frames[2], (256, 192))
    synth.write_google_motion_jpeg(tmp_path / "PXL_2.MP.jpg", ref, mp4, round(2 / FPS * 1e6))
    lq = synth._resize(frames[9], (256, 192))
    synth._jpeg_bytes(lq)
    (tmp_path / "PXL_2_edited.jpg").write_bytes(synth._jpeg_bytes(lq, quality=60))
    a = only_asset(tmp_path)
    assert a.target == tmp_path / "PXL_2_edited.jpg"
    assert a.reselected and a.t1 == pytest.approx(9 / FPS, abs=1e-3)


def test_plain_files_are_not_listed(tmp_path: Path) -> None:
    from PIL import Image

    Image.fromarray(texture(48, 64)).save(tmp_path / "holiday.jpg")
    (tmp_path / "notes.txt").write_text("hi")
    assert scan(tmp_path) == []


def test_unchanged_rescan_reads_no_content(tmp_path: Path, frames: list) -> None:
    paths = synth.write_reselected_live_photo(tmp_path, "IMG_2000", frames, FPS, 2, 9)
    cache = DictAssetCache()
    first = only_asset(tmp_path, cache=cache)
    # Change the bytes but keep size, mtime and inode: a stat-only rescan cannot notice.
    ref = paths["reference"]
    st = ref.stat()
    with open(ref, "r+b") as fh:
        fh.seek(st.st_size // 2)
        fh.write(b"\x00" * 16)
    os.utime(ref, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert only_asset(tmp_path, cache=cache) is first
    # Touching the file changes its fingerprint: the group is read again.
    os.utime(ref, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    again = only_asset(tmp_path, cache=cache)
    assert again.signatures["reference"].content_hash != first.signatures["reference"].content_hash


def test_ignored_directories_and_progress(tmp_path: Path, frames: list) -> None:
    synth.write_reselected_live_photo(tmp_path / "@eaDir", "IMG_1", frames, FPS, 1, 5)
    synth.write_reselected_live_photo(tmp_path / ".lmd", "IMG_2", frames, FPS, 1, 5)
    synth.write_reselected_live_photo(tmp_path / "ok", "IMG_3", frames, FPS, 1, 5)
    seen: list[int] = []
    items = scan(tmp_path, progress=seen.append)
    assert [i.key for i in items] == ["ok/IMG_3"]
    assert seen and seen[-1] == 4


def test_unicode_keys_are_nfc(tmp_path: Path, frames: list) -> None:
    nfd = "Cafe\u0301"
    synth.write_reselected_live_photo(tmp_path / nfd, "IMG_4", frames, FPS, 1, 1, with_edited=False)
    (a,) = scan(tmp_path)
    assert a.key == "Caf\u00e9/IMG_4"


def test_unreadable_member_gives_reason(tmp_path: Path, frames: list) -> None:
    paths = synth.write_reselected_live_photo(tmp_path, "IMG_5", frames, FPS, 1, 5)
    paths["video"].write_bytes(paths["video"].read_bytes()[:100])
    a = only_asset(tmp_path)
    assert not a.reselected and a.reason and a.reason.startswith("unreadable:")
    assert not isinstance(a, Unreadable)
