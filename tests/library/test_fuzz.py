"""Property-based fuzzing of every reader: only `UnreadableFile` may escape.

Inputs are valid files built by `synth`, mutated by hypothesis (byte flips, truncation,
insertions, splices), plus raw random bytes.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.files import exif, xmp
from daemon.files.errors import UnreadableFile
from daemon.library import aae, media, motion, quicktime, stills, synth

from .conftest import FPS, moving_frames, texture

CID = "11111111-2222-3333-4444-555555555555"
_DIR = Path(tempfile.mkdtemp(prefix="lmd-fuzz-"))


def _seeds() -> dict[str, bytes]:
    frames = moving_frames(n=3, h=16, w=16)
    rgb = texture(16, 16)
    mp4 = synth.encode_video(frames, FPS, "mp4")
    out = {}
    for name, write in {
        "heic": lambda p: synth.write_apple_still(p, rgb, CID, "heic"),
        "jpeg": lambda p: synth.write_apple_still(p, rgb, CID, "jpeg"),
        "mov": lambda p: synth.write_live_mov(p, frames, FPS, CID, 0.05),
        "google": lambda p: synth.write_google_motion_jpeg(p, rgb, mp4, 1000),
        "samsung": lambda p: synth.write_samsung_seft_jpeg(p, rgb, mp4),
        "mpvd": lambda p: synth.write_heic_mpvd(p, rgb, mp4),
        "aae": lambda p: synth.write_aae(p, 0.1, ["Crop"]),
        "aae_bin": lambda p: synth.write_aae(p, 0.1, binary=True),
    }.items():
        path = _DIR / f"seed_{name}"
        write(path)
        out[name] = path.read_bytes()
    return out


SEEDS = _seeds()


@st.composite
def mutated(draw: st.DrawFn, seed: str) -> bytes:
    data = bytearray(SEEDS[seed])
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "word"]))
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[pos] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(max_size=16))
        else:  # overwrite a 32-bit word: sizes, counts and offsets
            data[pos : pos + 4] = draw(
                st.sampled_from(
                    [
                        b"\xff\xff\xff\xff",
                        b"\x00\x00\x00\x00",
                        b"\x00\x00\x00\x01",
                        b"\x7f\xff\xff\xff",
                        b"\x00\x00\x00\x08",
                    ]
                )
            )
    return bytes(data)


def _only_unreadable(fn: Callable[[Path], object], data: bytes) -> None:
    path = _DIR / "case"
    path.write_bytes(data)
    with contextlib.suppress(UnreadableFile):
        fn(path)


def _still(path: Path) -> None:
    meta = stills.read_still_meta(path)
    if meta.exif is not None:
        exif.apple_content_identifier(meta.exif)
        exif.orientation(meta.exif)
    found = motion.read_motion(path, meta)
    if found is not None:
        quicktime.read_mov_info(path, found.video_offset, found.video_length)


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))


@FUZZ
@given(
    data=st.one_of(
        *(mutated(s) for s in ("heic", "jpeg", "google", "samsung", "mpvd")),
        st.binary(max_size=256),
    )
)
def test_still_readers(data: bytes) -> None:
    _only_unreadable(_still, data)


@FUZZ
@given(data=st.one_of(mutated("mov"), st.binary(max_size=256)))
def test_mov_reader(data: bytes) -> None:
    _only_unreadable(quicktime.read_mov_info, data)


@FUZZ
@given(data=st.one_of(mutated("aae"), mutated("aae_bin"), st.binary(max_size=256)))
def test_aae_reader(data: bytes) -> None:
    _only_unreadable(aae.read_aae, data)


@FUZZ
@given(data=st.binary(max_size=512))
def test_exif_and_xmp_parsers(data: bytes) -> None:
    for fn in (
        exif.apple_content_identifier,
        exif.strip_exif_header,
        xmp.parse_packet,
        motion.read_motion_xmp,
        motion.is_motion_xmp,
    ):
        with contextlib.suppress(UnreadableFile):
            fn(data)


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.one_of(mutated("jpeg"), mutated("heic")))
def test_media_loader(data: bytes) -> None:
    _only_unreadable(lambda p: media.load_still(p, max_pixels=1_000_000), data)
