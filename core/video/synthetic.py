"""Live Photo clips with ground truth, synthesised from one high-quality photo.

Why: there are no public Live Photo clips with a ground truth, and a clip restorer must be
measured (bench/video.py) and tested (tests/video/) on clips whose every frame is known. A clip
is a camera moving over the photo (a smooth hand-held path: drift, a little rotation and zoom,
small shake) with a subject that moves on its own across the scene (a soft-edged patch of the
photo with its own path and turn), so both ways a keyframe stops applying are present: regions
it never saw (the camera panned beyond its view) and regions where it shows something else
(where the subject was, and where it is now).

- the scene is rendered at 2 × `detail` × the frame size and area-averaged down to the ground
  truth, so it holds the photo's real detail at the frames' resolution, and to the key photo
  (`detail` × the frame size) at `key_index`, the high-quality still of that moment;
- the degraded clip is the ground truth through the Live Photo video path: blur and sensor
  noise (`core.degrade.LivePhotoDegradation`), then the whole clip through one H.264 (or HEVC)
  encoder, so the codec's temporal behaviour (P frames, changing quantisation) is real.

Everything is deterministic for a seed. Frames are uint8 RGB, upright.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from fractions import Fraction

import cv2
import numpy as np

from core.degrade import LivePhotoDegradation
from core.images import resize


@dataclass(slots=True)
class SyntheticClip:
    key_photo: np.ndarray
    key_index: int
    truth: list[np.ndarray]
    degraded: list[np.ndarray]
    fps: float


def _smooth(rng: np.random.Generator, seconds: np.ndarray, amplitude: float) -> np.ndarray:
    """A smooth random curve over time, about ±amplitude over a 3 s clip: a slow drift plus
    sways of ~2.5 s and ~0.8 s periods, and a faint 9 Hz tremor."""
    curve = rng.uniform(-1, 1) * seconds / 3.0
    for period, weight in ((2.5, 0.5), (0.8, 0.2), (1 / 9, 0.03)):
        curve = curve + weight * rng.uniform(-1, 1) * np.sin(
            2 * math.pi * (seconds / period + rng.uniform()))
    return amplitude * curve / 2.0


def camera_homographies(
    n: int, size: tuple[int, int], key_index: int, seed: int, strength: float = 1.0,
    fps: float = 30.0,
) -> list[np.ndarray]:
    """Per frame, the 3×3 map from the frame's grid to the key photo's grid (same size).

    A hand-held path over a 3 s clip: drift and sway of a few % of the width, rotation within
    about ±1.5°, zoom within ±2 %, a faint tremor; identity at `key_index`.
    """
    rng = np.random.default_rng(seed)
    h, w = size
    seconds = np.arange(n) / fps
    tx = _smooth(rng, seconds, 0.05 * w * strength)
    ty = _smooth(rng, seconds, 0.04 * h * strength)
    angle = _smooth(rng, seconds, math.radians(1.5) * strength)
    zoom = 1.0 + _smooth(rng, seconds, 0.02 * strength)
    out = []
    for i in range(n):
        a = angle[i] - angle[key_index]
        z = zoom[i] / zoom[key_index]
        dx, dy = tx[i] - tx[key_index], ty[i] - ty[key_index]
        c, s = math.cos(a) * z, math.sin(a) * z
        cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
        out.append(np.array([
            [c, -s, cx - c * cx + s * cy + dx],
            [s, c, cy - s * cx - c * cy + dy],
            [0.0, 0.0, 1.0],
        ]))
    return out


def _subject(
    scene: np.ndarray, size: tuple[int, int], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A soft-edged elliptical patch of the scene (its pixels and alpha), ~22 % of the short
    side across, taken from a random place."""
    h, w = size
    side = round(0.22 * min(h, w)) | 1
    y0 = int(rng.integers(0, scene.shape[0] - side))
    x0 = int(rng.integers(0, scene.shape[1] - side))
    patch = scene[y0 : y0 + side, x0 : x0 + side].copy()
    alpha = np.zeros((side, side), np.float32)
    cv2.ellipse(alpha, (side // 2, side // 2), (side // 2 - 3, side // 3), 20, 0, 360, 1.0, -1)
    alpha = cv2.GaussianBlur(alpha, (0, 0), max(1.0, side / 80))
    return patch, alpha


def _composite(
    frame: np.ndarray, patch: np.ndarray, alpha: np.ndarray, centre: tuple[float, float],
    turn: float,
) -> np.ndarray:
    h, w = frame.shape[:2]
    side = patch.shape[0]
    move = cv2.getRotationMatrix2D(((side - 1) / 2, (side - 1) / 2), turn, 1.0)
    move[:, 2] += (centre[0] - (side - 1) / 2, centre[1] - (side - 1) / 2)
    placed = cv2.warpAffine(patch, move, (w, h), flags=cv2.INTER_CUBIC)
    a = cv2.warpAffine(alpha, move, (w, h), flags=cv2.INTER_LINEAR)[:, :, None]
    return frame * (1.0 - a) + placed * a


def render_truth(
    photo: np.ndarray,
    frames: int,
    frame_size: tuple[int, int],
    key_index: int,
    seed: int = 0,
    detail: int = 2,
    view: float = 0.88,
    motion: float = 1.0,
    fps: float = 30.0,
    oversample: int = 2,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """(key photo, ground-truth frames): the camera path over the centre `view` of `photo`
    (so the path stays inside it) plus the moving subject; see the module's docstring.

    The scene is rendered at `oversample` × the key photo's size and area-averaged down to
    both the key photo and the frames, as a sensor integrates light over its pixels: a render
    at the key's own size would be softened by the interpolation by an amount that depends on
    each frame's sub-pixel position, a flicker in the ground truth itself.
    """
    fh, fw = frame_size
    kh, kw = fh * detail, fw * detail
    rh, rw = kh * oversample, kw * oversample
    ph, pw = photo.shape[:2]
    # The photo at the scale where the view window is exactly the render's size.
    scale = min(rh / (ph * view), rw / (pw * view))
    scene = resize(photo.astype(np.float32) / (255.0 if photo.dtype == np.uint8 else 1.0),
                   max(rh, round(ph * scale)), max(rw, round(pw * scale)))
    oy, ox = (scene.shape[0] - rh) / 2.0, (scene.shape[1] - rw) / 2.0
    shift = np.array([[1.0, 0.0, ox], [0.0, 1.0, oy], [0.0, 0.0, 1.0]])
    paths = camera_homographies(frames, (rh, rw), key_index, seed, motion, fps)
    rng = np.random.default_rng(seed + 1)
    patch, alpha = _subject(scene, (rh, rw), rng)
    start = np.array([rng.uniform(0.3, 0.45) * rw, rng.uniform(0.35, 0.65) * rh])
    # Across a quarter of the width and 8-15 degrees of turn per 3 s, whatever the clip's length.
    per_second = np.array([0.25 * rw, rng.uniform(-0.08, 0.08) * rh]) / 3.0
    travel = per_second * rng.choice([-1, 1]) * motion
    turn = rng.uniform(8.0, 15.0) / 3.0 * motion
    key = None
    truth = []
    for i in range(frames):
        grid_to_scene = shift @ paths[i]
        fine = cv2.warpPerspective(
            scene, grid_to_scene, (rw, rh), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REFLECT,
        )
        seconds = i / fps
        centre = start + travel * seconds
        fine = np.clip(_composite(fine, patch, alpha, (centre[0], centre[1]), turn * seconds),
                       0.0, 1.0)
        if i == key_index:
            key_fine = cv2.resize(fine, (kw, kh), interpolation=cv2.INTER_AREA)
            key = np.clip(np.rint(key_fine * 255.0), 0, 255).astype(np.uint8)
        small = cv2.resize(fine, (fw, fh), interpolation=cv2.INTER_AREA)
        truth.append(np.clip(np.rint(small * 255.0), 0, 255).astype(np.uint8))
    assert key is not None
    return key, truth


def degrade_clip(
    truth: list[np.ndarray],
    fps: float = 30.0,
    codec: str = "h264",
    crf: int = 27,
    seed: int = 0,
    degradation: LivePhotoDegradation | None = None,
) -> list[np.ndarray]:
    """The ground truth through the video path: blur and noise per frame, then one encoder for
    the whole clip (no B-frames, as phones record), decoded back to uint8 RGB.
    Frame sizes must be even (4:2:0 chroma)."""
    import av

    model = degradation or LivePhotoDegradation(codec=None, frames=1)
    h, w = truth[0].shape[:2]
    encoder = av.CodecContext.create({"h264": "libx264", "hevc": "libx265"}[codec], "w")
    encoder.width, encoder.height = w, h
    encoder.pix_fmt = "yuv420p"
    rate = Fraction(fps).limit_denominator(1001)
    encoder.time_base = 1 / rate
    encoder.framerate = rate
    # One thread: x264's frame threads make the output depend on scheduling, and a test that
    # compares methods on a clip needs the same clip every run.
    encoder.thread_count = 1
    options = {"crf": str(crf), "preset": "veryfast", "bframes": "0"}
    if codec == "h264":
        options["threads"] = "1"
    else:
        options["x265-params"] = "log-level=none:pools=none:frame-threads=1:bframes=0"
    encoder.options = options
    noisy = replace(model, size=(h, w), codec=None, frames=1)
    packets = []
    for i, frame in enumerate(truth):
        soft = noisy.apply(frame.astype(np.float32) / 255.0, seed=seed * 100_003 + i)
        u8 = np.clip(np.rint(soft * 255.0), 0, 255).astype(np.uint8)
        video_frame = av.VideoFrame.from_ndarray(u8, format="rgb24").reformat(format="yuv420p")
        video_frame.pts = i
        packets.extend(encoder.encode(video_frame))
    packets.extend(encoder.encode(None))
    decoder = av.CodecContext.create(codec, "r")
    if encoder.extradata:
        decoder.extradata = encoder.extradata
    out = []
    for packet in [*packets, None]:
        for decoded in decoder.decode(packet):
            out.append(decoded.to_ndarray(format="rgb24")[:h, :w].copy())
    return out


def synthesise_clip(
    photo: np.ndarray,
    frames: int,
    frame_size: tuple[int, int],
    *,
    key_index: int | None = None,
    seed: int = 0,
    detail: int = 2,
    fps: float = 30.0,
    crf: int = 27,
    motion: float = 1.0,
    degradation: LivePhotoDegradation | None = None,
) -> SyntheticClip:
    """A whole clip (key photo, truth, degraded); key at the middle frame by default, as an
    iPhone places the still about halfway through its 3 s video. `degradation` sets the blur
    and noise (default: `LivePhotoDegradation`'s phone-like values)."""
    key_index = frames // 2 if key_index is None else key_index
    key, truth = render_truth(photo, frames, frame_size, key_index, seed, detail, motion=motion,
                              fps=fps)
    degraded = degrade_clip(truth, fps, crf=crf, seed=seed, degradation=degradation)
    return SyntheticClip(key_photo=key, key_index=key_index, truth=truth, degraded=degraded,
                         fps=fps)
