"""Real faces and the edits a bad restoration could make to them, for the face guard.

The portrait is scikit-image's `data.astronaut()` (Eileen Collins, NASA, public domain); the
"other person" comes from `data.lfw_subset()` (Labeled Faces in the Wild crops). Both ship
inside the scikit-image wheel, so nothing is downloaded. `bench/face_drift.py` uses the same
edits to measure the distances that `core.faces.DRIFT_THRESHOLD` is chosen from.

A scene is the restored still's truth at `scale` times the frame's size (the astronaut
upscaled, so the frame is always ~512 px with a face of ~90 px, the size at which dlib's
detector finds faces) and the frame a video-like view of it: area-downscaled, noisy and
JPEG-compressed.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from skimage import data, transform

ASTRONAUT_FACE = (179, 83, 266, 170)
"""dlib's box for the astronaut's face in the 512 px image (left, top, right, bottom)."""


@dataclass(frozen=True)
class Scene:
    still: np.ndarray  # float32 RGB, the truth at the still's resolution
    frame: np.ndarray  # float32 RGB, the video frame at its own resolution
    face: tuple[int, int, int, int]  # the face region in the still's pixels, with a margin


def _f32(image: np.ndarray) -> np.ndarray:
    return (image.astype(np.float32) / 255.0) if image.dtype == np.uint8 else image


def scene(scale: float = 2.0, quality: int = 80, noise: float = 2.0, seed: int = 0) -> Scene:
    base = data.astronaut()
    h, w = base.shape[:2]
    sh, sw = round(h * scale), round(w * scale)
    still = _f32(cv2.resize(base, (sw, sh), interpolation=cv2.INTER_CUBIC))
    rng = np.random.default_rng(seed)
    small = base.astype(np.float32) + rng.normal(0.0, noise, base.shape)
    small = np.clip(small + 0.5, 0, 255).astype(np.uint8)
    ok, jpeg = cv2.imencode(".jpg", small[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    frame = _f32(cv2.imdecode(jpeg, cv2.IMREAD_COLOR)[:, :, ::-1])
    left, top, right, bottom = ASTRONAUT_FACE
    m = 12  # grow dlib's brow-to-lip box to the whole face
    face = tuple(round(v * scale) for v in (left - m, top - m - 4, right + m, bottom + m))
    return Scene(still=np.clip(still, 0, 1), frame=frame, face=face)  # type: ignore[arg-type]


def honest(still: np.ndarray, seed: int = 1) -> np.ndarray:
    """What a good restorer returns: the truth, a little sharpened, with fine grain."""
    blur = cv2.GaussianBlur(still, (0, 0), 1.5)
    sharp = still + 0.4 * (still - blur)
    grain = np.random.default_rng(seed).normal(0.0, 0.01, still.shape).astype(np.float32)
    return np.clip(sharp + grain, 0, 1).astype(np.float32)


def _region(image: np.ndarray, face: tuple[int, int, int, int]) -> tuple[slice, slice]:
    left, top, right, bottom = face
    return slice(top, bottom), slice(left, right)


def mirrored(still: np.ndarray, face: tuple[int, int, int, int]) -> np.ndarray:
    out = still.copy()
    ys, xs = _region(still, face)
    out[ys, xs] = still[ys, xs][:, ::-1]
    return out


def stretched(still: np.ndarray, face: tuple[int, int, int, int], k: float) -> np.ndarray:
    """The face region stretched vertically by `k` about its centre."""
    out = still.copy()
    ys, xs = _region(still, face)
    region = still[ys, xs]
    rh, rw = region.shape[:2]
    tall = cv2.resize(region, (rw, round(rh * k)), interpolation=cv2.INTER_CUBIC)
    off = (tall.shape[0] - rh) // 2
    out[ys, xs] = tall[off : off + rh]
    return np.clip(out, 0, 1)


def swirled(still: np.ndarray, face: tuple[int, int, int, int], strength: float) -> np.ndarray:
    """The face swirled about its centre (only a crop around it is transformed: the swirl is
    the identity beyond its radius, and the whole image would take seconds)."""
    left, top, right, bottom = face
    radius = 0.6 * (right - left)
    cx, cy = (left + right) / 2, (top + bottom) / 2
    y0, y1 = max(0, int(cy - radius) - 2), min(still.shape[0], int(cy + radius) + 3)
    x0, x1 = max(0, int(cx - radius) - 2), min(still.shape[1], int(cx + radius) + 3)
    crop = still[y0:y1, x0:x1]
    turned = transform.swirl(
        crop, center=(cx - x0, cy - y0), strength=strength, radius=radius, order=1
    )
    out = still.copy()
    out[y0:y1, x0:x1] = np.clip(turned, 0, 1)
    return out


def another_person(still: np.ndarray, face: tuple[int, int, int, int], index: int) -> np.ndarray:
    """The face region replaced by the LFW subset's face number `index` (0..99 are faces)."""
    other = data.lfw_subset()[index].astype(np.float32)
    out = still.copy()
    ys, xs = _region(still, face)
    rh, rw = out[ys, xs].shape[:2]
    grey = cv2.resize(other, (rw, rh), interpolation=cv2.INTER_CUBIC)
    out[ys, xs] = np.clip(grey, 0, 1)[:, :, None]
    return out
