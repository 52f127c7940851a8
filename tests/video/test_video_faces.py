"""Faces keep their identity in restored clips: the still restorers' face guard runs on every
frame, and a face that drifted falls back to the frame's own content."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

pytest.importorskip("skimage", reason="scikit-image (test extra) ships the portrait")
from skimage import data

from core import faces
from core.video.synthetic import SyntheticClip, synthesise_clip
from tests.faces import edits

from .conftest import run_guided_video

ASTRONAUT_FACE_1024 = (334, 134, 556, 364)
"""The astronaut's face (with its margin) in the 1024 px key photo of the clip below."""


@pytest.fixture(scope="module")
def swapped() -> SyntheticClip:
    """A 512 px clip of the astronaut (her face ~90 px in the frames, the size dlib finds) whose
    key photo shows another person's face: what a restoration must never paste in."""
    if not faces.availability()[0]:
        pytest.skip("lmd[faces] (dlib-bin, face-recognition-models) missing")
    photo = cv2.resize(data.astronaut(), (1024, 1024), interpolation=cv2.INTER_CUBIC)
    clip = synthesise_clip(photo, 2, (512, 512), seed=2, motion=0.3)
    key = edits.another_person(clip.key_photo.astype(np.float32) / 255.0, ASTRONAUT_FACE_1024, 0)
    key_u8 = np.clip(np.rint(key * 255.0), 0, 255).astype(np.uint8)
    return SyntheticClip(key_u8, clip.key_index, clip.truth, clip.degraded, clip.fps)


def face_error(frames: list[np.ndarray], clip: SyntheticClip) -> float:
    left, top, right, bottom = (v // 2 for v in ASTRONAUT_FACE_1024)
    region = (slice(top, bottom), slice(left, right))
    return float(np.mean([np.mean((f[region].astype(np.float64) - t[region]) ** 2)
                          for f, t in zip(frames, clip.truth, strict=True)]))


def test_a_drifting_face_falls_back_to_the_frame(swapped: SyntheticClip) -> None:
    # Trust everything (agree_tolerance 10): without the guard the other face is pasted in.
    pasted = run_guided_video(swapped, agree_tolerance=10.0, face_check=False)
    guarded = run_guided_video(swapped, agree_tolerance=10.0, face_check=True)
    assert guarded.diagnostics.extra["face_check"] == "on"
    assert guarded.diagnostics.extra["face_drift_frames"] == [0, 1]
    assert "face_drift_frames" not in pasted.diagnostics.extra
    degraded = face_error(swapped.degraded, swapped)
    # The pasted face is 8x the degraded frame's error here; the guarded face is the frame's
    # own content (measured: the degraded frame's error to 1 %; 10 % allows for the feathered
    # edge of the fallback reaching into the face box).
    assert face_error(pasted.frames, swapped) > 3 * degraded
    assert face_error(guarded.frames, swapped) < 1.1 * degraded


def test_without_the_extra_it_says_so(swapped: SyntheticClip,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(faces, "availability", lambda: (False, "dlib missing"))
    short = SyntheticClip(swapped.key_photo, 0, swapped.truth[:1], swapped.degraded[:1],
                          swapped.fps)
    restored = run_guided_video(short, face_check=True)
    assert restored.diagnostics.extra["face_check"] == "not available: dlib missing"
