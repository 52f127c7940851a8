"""Fixtures for the clip restorer and video writer tests, built in code (small and fast).

`small_clip` is a synthetic Live Photo clip with ground truth (`core.video.synthetic`): a
camera path over a generated photo, a subject moving on its own, H.264 at CRF 27.
It is built once per session; the restorations tests compare are built once too.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.video import ClipRequest, Keyframe, get_clip_restorer, restore_clip
from core.video.api import ClipDiagnostics
from core.video.synthetic import SyntheticClip, synthesise_clip

FRAMES = 10
FRAME_SIZE = (120, 160)


def generated_photo(height: int = 300, width: int = 400, seed: int = 0) -> np.ndarray:
    """A photo-like uint8 image: multi-scale texture, colour, and hard-edged shapes (about the
    key photo's size, so its finest texture survives into the frames as phones' detail does)."""
    rng = np.random.default_rng(seed)
    out = np.zeros((height, width, 3), np.float32)
    for sigma, amp in ((24.0, 0.5), (6.0, 0.3), (1.5, 0.25)):
        layer = cv2.GaussianBlur(rng.standard_normal((height, width, 3)).astype(np.float32),
                                 (0, 0), sigma)
        out += amp * layer / (layer.std() + 1e-6)
    out = 0.5 + 0.12 * out
    for _ in range(14):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        radius = int(rng.integers(height // 30, height // 8))
        cv2.circle(out, centre, radius, tuple(float(c) for c in rng.random(3)), -1)
    return np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)


@dataclass
class Restored:
    frames: list[np.ndarray]
    diagnostics: ClipDiagnostics


def run_guided_video(clip: SyntheticClip, **params: object) -> Restored:
    """guided-video on a clip; the face guard only where a test asks for it (there are no faces
    in the generated clips, and loading dlib's models costs a second)."""
    params.setdefault("face_check", False)
    restorer = get_clip_restorer("guided-video")
    request = ClipRequest(frames=iter(clip.degraded),
                          keyframes=[Keyframe(clip.key_photo, clip.key_index)],
                          frame_count=len(clip.degraded), params=params)
    frames = list(restore_clip(request, restorer=restorer))
    return Restored(frames, restorer.diagnostics)


@pytest.fixture(scope="session")
def small_clip() -> SyntheticClip:
    # Three times a hand's usual motion: at 160 px wide a normal path moves under a pixel per
    # frame and the codec's errors barely change between frames, so there would be no flicker
    # for stabilisation to remove.
    return synthesise_clip(generated_photo(), FRAMES, FRAME_SIZE, seed=4, motion=3.0)


@pytest.fixture(scope="session")
def restored(small_clip: SyntheticClip) -> Restored:
    return run_guided_video(small_clip)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random LiveMoments checkpoint (`livemoments-video` jobs on the CPU), written
    once per session (about 2 s)."""
    from core.livemoments.write import write_random_checkpoint

    return write_random_checkpoint(tmp_path_factory.mktemp("lm") / "tiny", size="tiny", seed=3)


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """The tiny networks are latency-bound: two OpenMP threads on a loaded 2-core machine spin
    (see tests/livemoments/conftest.py), so this runs torch single-threaded (restored after)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def movie_with_audio(frames: list[np.ndarray], fps: float, rotation: int = 0,
                     fmt: str = "mov") -> bytes:
    """An H.264 movie of upright `frames` stored turned by `rotation` (as an iPhone stores
    portrait video), with an AAC mono soundtrack, as bytes (PyAV; no B-frames)."""
    import io
    from fractions import Fraction

    import av

    stored = [np.ascontiguousarray(np.rot90(f, -(rotation // 90) % 4)) for f in frames]
    h, w = stored[0].shape[:2]
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        video = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        if rotation:
            video.set_display_rotation(rotation)
        video.width, video.height, video.pix_fmt = w, h, "yuv420p"
        video.options = {"preset": "ultrafast", "bframes": "0", "crf": "20"}
        audio = out.add_stream("aac", rate=44100)
        audio.layout = "mono"
        seconds = len(frames) / fps
        tone = np.sin(np.arange(int(44100 * seconds)) * 0.05).astype(np.float32) * 0.3
        for arr in stored:
            out.mux(video.encode(av.VideoFrame.from_ndarray(arr, "rgb24")))
        for start in range(0, len(tone), 1024):
            chunk = av.AudioFrame.from_ndarray(tone[None, start : start + 1024], format="flt",
                                               layout="mono")
            chunk.sample_rate, chunk.pts = 44100, start
            out.mux(audio.encode(chunk))
        out.mux(audio.encode(None))
        out.mux(video.encode(None))
    return buf.getvalue()
