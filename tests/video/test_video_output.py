"""Writing a restored clip: still the same Live Photo (frames, timing, rotation, audio bit for
bit, content identifier, still-image-time track), written atomically."""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np
import pytest

from core.metrics import psnr_y
from daemon.library import synth
from daemon.library.quicktime import read_mov_info
from daemon.output import OutputError
from daemon.output.atomic import TEMP_PREFIX
from daemon.output.video import SourceMovie, write_video
from tests.library.conftest import exiftool_json

from .conftest import generated_photo, movie_with_audio

CID = "5E1F0C2A-7D3B-4C55-9A1E-0123456789AB"
FPS = 30.0
STILL_TIME = 0.2
FRAMES = 12


def upright_frames(count: int = FRAMES, size: tuple[int, int] = (96, 128)) -> list[np.ndarray]:
    photo = generated_photo(size[0] + 40, size[1] + 40, seed=7)
    return [photo[i * 3 : i * 3 + size[0], i * 2 : i * 2 + size[1]].copy() for i in range(count)]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A portrait Live Photo MOV: rotated 90°, AAC audio, content identifier, still time."""
    movie = movie_with_audio(upright_frames(), FPS, rotation=90)
    path = tmp_path_factory.mktemp("src") / "IMG_0001.MOV"
    path.write_bytes(synth.add_live_metadata(movie, CID, STILL_TIME))
    return path


def decoded(path: Path) -> tuple[list[np.ndarray], list[float], int]:
    with av.open(str(path)) as container:
        frames, times, rotation = [], [], 0
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            times.append(float(frame.time))
            rotation = frame.rotation
    return frames, times, rotation


def audio_packets(path: Path) -> list[tuple[bytes, float]]:
    with av.open(str(path)) as container:
        return [(bytes(p), float(p.pts * p.time_base))
                for p in container.demux(container.streams.audio[0]) if p.size]


@pytest.fixture(scope="module")
def written(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("out") / "IMG_0001_restored.MOV"
    write_video(out, upright_frames(), SourceMovie(path=source))
    return out


def test_timing_rotation_and_pixels_are_kept(source: Path, written: Path) -> None:
    before, after = read_mov_info(source), read_mov_info(written)
    assert after.frame_count == before.frame_count == FRAMES
    assert after.frame_duration == pytest.approx(before.frame_duration, abs=1e-9)
    assert after.duration == pytest.approx(before.duration, abs=1e-3)  # mvhd units (ms)
    _, src_times, src_rotation = decoded(source)
    out_frames, out_times, out_rotation = decoded(written)
    assert out_times == pytest.approx(src_times, abs=1e-9)
    assert out_rotation == src_rotation == 90
    # The samples are stored turned as the source's are; the pixels are the frames given, kept
    # by CRF 16 on luma (4:2:0 halves the colour resolution whatever the quality): CRF 18 gives
    # 41.5 dB on this texture, a phone-like CRF 27 36 dB.
    expected = [np.rot90(f, -1) for f in upright_frames()]
    quality = [psnr_y(got / 255.0, want / 255.0) for got, want in zip(out_frames, expected,
                                                                      strict=True)]
    assert min(quality) > 40
    rows = {row["SourceFile"]: row for row in exiftool_json(source, written, args=("-n",))}
    assert rows[str(written)]["Composite:Rotation"] == rows[str(source)]["Composite:Rotation"]


def test_audio_is_copied_bit_exact(source: Path, written: Path) -> None:
    before, after = audio_packets(source), audio_packets(written)
    assert len(before) > 10
    assert [data for data, _ in after] == [data for data, _ in before]
    assert [t for _, t in after] == pytest.approx([t for _, t in before], abs=1e-6)


def test_content_identifier_and_still_image_time_survive(source: Path, written: Path) -> None:
    (row,) = exiftool_json(written, args=("-ee", "-n", "-a"))
    assert row["Keys:ContentIdentifier"] == CID
    # exiftool sees the timed-metadata sample (it ignores the edit list, formats page 1.2).
    assert any(k.endswith(":StillImageTime") and v == -1 for k, v in row.items()), row
    # The edit list is carried too: the still-image-time is where it was on the timeline.
    assert read_mov_info(written).still_image_time == pytest.approx(STILL_TIME, abs=1e-3)
    assert read_mov_info(written).content_identifier == CID
    with av.open(str(written)) as container:
        (packet,) = [p for p in container.demux(container.streams.data[0]) if p.size]
        assert float(packet.pts * packet.time_base) == pytest.approx(STILL_TIME, abs=1e-3)
        assert bytes(packet) == b"\x00\x00\x00\x09\x00\x00\x00\x01\xff"


def test_larger_frames_and_hevc(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "twice.MOV"
    big = [np.repeat(np.repeat(f, 2, axis=0), 2, axis=1) for f in upright_frames()]
    write_video(out, big, SourceMovie(path=source), codec="hevc")
    info = read_mov_info(out)
    assert (info.width, info.height) == (192, 256)  # stored turned, as the source's 96×128
    assert info.frame_count == FRAMES and info.content_identifier == CID
    (row,) = exiftool_json(out, args=("-n",))
    assert row["Track1:CompressorID"] == "hvc1"


def test_embedded_movie_becomes_a_sidecar_mp4(tmp_path: Path) -> None:
    mp4 = movie_with_audio(upright_frames(), FPS, fmt="mp4")
    out = tmp_path / "PXL_0001.mp4"
    write_video(out, upright_frames(), SourceMovie(data=mp4))
    source = tmp_path / "embedded.mp4"
    source.write_bytes(mp4)
    assert decoded(out)[1] == pytest.approx(decoded(source)[1], abs=1e-9)
    assert audio_packets(out) == audio_packets(source)


def leftovers(folder: Path) -> list[str]:
    return [name for name in os.listdir(folder) if name.startswith(TEMP_PREFIX)]


def test_a_failing_restorer_leaves_nothing(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.MOV"
    out.write_bytes(b"previous version")

    def frames():
        yield from upright_frames()[:5]
        raise RuntimeError("restorer crashed")

    # The restorer's own error comes out as it was (a cancellation stays a cancellation).
    with pytest.raises(RuntimeError, match="restorer crashed"):
        write_video(out, frames(), SourceMovie(path=source))
    assert out.read_bytes() == b"previous version"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("count", [FRAMES - 1, FRAMES + 1])
def test_a_frame_count_that_differs_is_refused(source: Path, tmp_path: Path, count: int) -> None:
    frames = (upright_frames() + upright_frames())[:count]
    with pytest.raises(OutputError, match="frames"):
        write_video(tmp_path / "out.MOV", frames, SourceMovie(path=source))
    assert os.listdir(tmp_path) == []


def test_unreadable_sources_and_names_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "broken.MOV"
    bad.write_bytes(b"\x00\x00\x00\x10ftypqt  " + os.urandom(64))
    with pytest.raises(OutputError, match="cannot read"):
        write_video(tmp_path / "out.MOV", upright_frames(), SourceMovie(path=bad))
    with pytest.raises(OutputError, match=r"must end in \.mov or \.mp4"):
        write_video(tmp_path / "out.avi", upright_frames(), SourceMovie(path=bad))
    assert sorted(os.listdir(tmp_path)) == ["broken.MOV"]
