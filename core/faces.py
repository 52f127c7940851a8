"""Face-identity guard: a restoration must never change who a person is.

Why: the reselected frame is often chosen *for* a face, and a restorer that transfers or
invents detail can move it towards another face (a misaligned reference patch, a
hallucinating model). The frame itself is the only trusted evidence of that face at that
instant, so each face found in the frame is compared with the same place in the restored
still, by dlib's 128-d ResNet identity descriptor (the `face-recognition-models` package's
`dlib_face_recognition_resnet_model_v1.dat`, read from the package's own files: nothing is
downloaded), and a distance past `DRIFT_THRESHOLD` marks "identity drift".

How the comparison is made fair: faces are compared **at the frame's own resolution** (the
restored still is area-downscaled to the frame's size; landmarks come from the frame and are
used for both images, so both crops are taken at the same place). Compared at the still's
resolution instead, the blur of the upscaled frame alone moves the descriptor as far as a
strong warp does (astronaut, 2.8x video-like degradation: honest 0.35, swirled face 0.36-0.5),
and nothing could be told apart. At the frame's resolution the frame holds real evidence,
and the restored detail above it cannot be checked against the frame anyway.

Why `DRIFT_THRESHOLD = 0.4` and not dlib's 0.6: 0.6 separates *different people* across
different photos (LFW). Here both sides show the same instant, so an honest restoration
differs from the frame only by the frame's noise and compression, and a face that is still
"the same person" by the 0.6 rule can be visibly a look-alike. Measured with
`bench/face_drift.py` (scikit-image's astronaut portrait; still 2-3x the frame; frame JPEG
q40-85 with noise): honest restorations 0.06-0.17 (0.10-0.16 when also misaligned by 1-4 frame
pixels); a mirrored face 0.23-0.27; a face stretched 15-30 % 0.31-0.34; a swirled face
0.46-0.51; another person's face pasted in 0.76-0.89. 0.4 is more than twice the worst honest
case (room for real video compression and flow error) and below every strong warp and swap.
Mild reshaping (mirrored, slightly stretched) passes: it keeps who the person is, and
geometry is the flow trust mask's job, not this guard's.

Small faces: dlib's HOG detector (run without upsampling) finds faces of about 80 px and
larger in the frame, a size at which the descriptor is meaningful; smaller faces are not
judged (and not reported), rather than judged on noise.

Without the optional extra (`lmd[faces]`: dlib-bin, face-recognition-models) the check says
"not available" with the reason; it never raises for that.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from core.images import resize, validate_image

DRIFT_THRESHOLD = 0.4
"""Descriptor distance (at the frame's resolution) past which a face has drifted; see above."""

DETECT_MAX_SIDE = 1600
"""The frame is shrunk to this longest side before detection (HOG costs ~0.3 s at 1920 px on
one CPU core; Live Photo frames are 1440-1920 px, so this rarely shrinks anything)."""

FALLBACK_MARGIN = 0.3
"""The fallback region reaches this fraction of the face box beyond each side: dlib's box
runs from the brows to the lips, so the forehead, chin and ears need the margin."""

_RESNET_FILE = "dlib_face_recognition_resnet_model_v1.dat"
_LANDMARKS_FILE = "shape_predictor_5_face_landmarks.dat"
_CHIP, _PADDING = 150, 0.25  # the aligned crop the ResNet model was trained on (dlib's defaults)

Status = Literal["passed", "drift", "no_faces", "not_available"]


@dataclass(frozen=True, slots=True)
class FaceComparison:
    """One face: where it is in the restored still, how far its identity moved."""

    box: tuple[int, int, int, int]
    """left, top, right, bottom in the restored still's pixels (right/bottom exclusive)."""
    distance: float
    drift: bool


@dataclass(frozen=True, slots=True)
class FaceCheck:
    """The verdict for one restoration; `to_dict()` is what the job row and page show."""

    status: Status
    threshold: float = DRIFT_THRESHOLD
    faces: tuple[FaceComparison, ...] = ()
    reason: str = ""
    seconds: float = 0.0

    @property
    def drifted(self) -> bool:
        return self.status == "drift"

    @property
    def drifting_boxes(self) -> list[tuple[int, int, int, int]]:
        return [face.box for face in self.faces if face.drift]

    def fallback_mask(self, height: int, width: int) -> np.ndarray:
        """H×W float32 in [0, 1]: 1 inside each drifting face (with `FALLBACK_MARGIN`),
        feathered to 0 outside; all zeros when nothing drifted. (height, width) is the
        restored still's size, the one the boxes are in."""
        return fallback_mask(self.drifting_boxes, height, width)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "threshold": self.threshold,
            "reason": self.reason,
            "seconds": round(self.seconds, 3),
            "faces": [
                {"box": list(f.box), "distance": round(f.distance, 4), "drift": f.drift}
                for f in self.faces
            ],
        }


@dataclass(slots=True)
class _Models:
    dlib: Any
    detector: Any
    landmarks: Any
    encoder: Any
    lock: threading.Lock = field(default_factory=threading.Lock)


_loaded: _Models | str | None = None
_load_lock = threading.Lock()


def _models_dir() -> Path:
    """The package's model folder, found without importing it: its __init__ imports
    pkg_resources, which current setuptools no longer ships."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the face-recognition-models package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def _load() -> _Models:
    dlib = importlib.import_module("dlib")
    models = _models_dir()
    for name in (_RESNET_FILE, _LANDMARKS_FILE):
        if not (models / name).is_file():
            raise FileNotFoundError(f"{models / name} is missing")
    return _Models(
        dlib=dlib,
        detector=dlib.get_frontal_face_detector(),
        landmarks=dlib.shape_predictor(str(models / _LANDMARKS_FILE)),
        encoder=dlib.face_recognition_model_v1(str(models / _RESNET_FILE)),
    )


def _models() -> _Models | str:
    """The loaded models, or why they cannot be loaded (remembered: loading takes ~0.5 s)."""
    global _loaded
    with _load_lock:
        if _loaded is None:
            try:
                _loaded = _load()
            except (ImportError, OSError, RuntimeError) as exc:
                _loaded = f"face check not available (install lmd[faces]): {exc}"
        return _loaded


def forget_models() -> None:
    """Drop the loaded models (tests; or to free ~30 MB when faces are switched off)."""
    global _loaded
    with _load_lock:
        _loaded = None


def availability() -> tuple[bool, str]:
    """(True, "") when the check can run, else (False, reason): for `lmd doctor`."""
    models = _models()
    return (False, models) if isinstance(models, str) else (True, "")


def _u8(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8))


def check_identity(
    frame: np.ndarray,
    restored: np.ndarray,
    *,
    threshold: float = DRIFT_THRESHOLD,
    detect_max_side: int = DETECT_MAX_SIDE,
) -> FaceCheck:
    """Compare every face of `frame` (the reselected video frame, its own resolution) with
    the same face in `restored` (the restored still, any larger size of the same view).

    Images follow core's convention (H×W×3 RGB, float in [0, 1] or uint8/uint16); a bad
    image raises `RestoreError` from `validate_image`. Never raises for a missing extra.
    """
    started = time.perf_counter()
    frame = validate_image(frame, "frame")
    restored = validate_image(restored, "restored")
    models = _models()
    if isinstance(models, str):
        return FaceCheck("not_available", threshold, reason=models)

    fh, fw = frame.shape[:2]
    rh, rw = restored.shape[:2]
    # Compare at the smaller of the two resolutions (normally the frame's; see the module doc).
    ch, cw = (fh, fw) if fh * fw <= rh * rw else (rh, rw)
    frame_c = _u8(resize(frame, ch, cw))
    restored_c = _u8(resize(restored, ch, cw))
    shrink = min(1.0, detect_max_side / max(ch, cw))
    detect_img = frame_c
    if shrink < 1.0:
        detect_img = _u8(resize(frame, max(1, round(ch * shrink)), max(1, round(cw * shrink))))
    dlib = models.dlib
    sy, sx = rh / ch, rw / cw
    boxes: list[tuple[int, int, int, int]] = []
    chips: list[np.ndarray] = []
    with models.lock:  # dlib's models are not documented as safe to share between threads
        for rect in models.detector(detect_img, 0):
            box_c = dlib.rectangle(
                round(rect.left() / shrink),
                round(rect.top() / shrink),
                round(rect.right() / shrink),
                round(rect.bottom() / shrink),
            )
            # The frame's landmarks place both crops: the same place, not the same look.
            shape = models.landmarks(frame_c, box_c)
            chips.append(dlib.get_face_chip(frame_c, shape, size=_CHIP, padding=_PADDING))
            chips.append(dlib.get_face_chip(restored_c, shape, size=_CHIP, padding=_PADDING))
            boxes.append(
                (
                    max(0, int(np.floor(box_c.left() * sx))),
                    max(0, int(np.floor(box_c.top() * sy))),
                    min(rw, int(np.ceil((box_c.right() + 1) * sx))),
                    min(rh, int(np.ceil((box_c.bottom() + 1) * sy))),
                )
            )
        # One batch through the network: ~25 % faster than one call per crop.
        vectors = np.asarray(models.encoder.compute_face_descriptor(chips)) if chips else []
    faces: list[FaceComparison] = []
    for i, box in enumerate(boxes):
        distance = float(np.linalg.norm(vectors[2 * i] - vectors[2 * i + 1]))
        faces.append(FaceComparison(box=box, distance=distance, drift=distance > threshold))
    status: Status = (
        "no_faces" if not faces else "drift" if any(f.drift for f in faces) else "passed"
    )
    return FaceCheck(status, threshold, tuple(faces), seconds=time.perf_counter() - started)


def fallback_mask(
    boxes: list[tuple[int, int, int, int]], height: int, width: int
) -> np.ndarray:
    """H×W float32 in [0, 1]: a feathered ellipse over each box grown by `FALLBACK_MARGIN`.

    The ellipse inscribed in the grown box (a face is oval; the box corners are background)
    is widened by two feathering sigmas (a tenth of the face width each) and then blurred, so
    the mask is ~1 across that inscribed ellipse and falls to 0 smoothly outside it: no visible
    seam between the frame's content and the restoration.
    """
    mask = np.zeros((height, width), np.float32)
    for left, top, right, bottom in boxes:
        bw, bh = right - left, bottom - top
        if bw <= 0 or bh <= 0:
            continue
        sigma = 0.1 * bw
        layer = np.zeros_like(mask)
        centre = (round((left + right) / 2), round((top + bottom) / 2))
        axes = (
            round((0.5 + FALLBACK_MARGIN) * bw + 2 * sigma),
            round((0.5 + FALLBACK_MARGIN) * bh + 2 * sigma),
        )
        cv2.ellipse(layer, centre, axes, 0, 0, 360, 1.0, thickness=-1)
        layer = cv2.GaussianBlur(layer, (0, 0), sigmaX=sigma)
        np.maximum(mask, layer, out=mask)
    return mask


def fall_back_inside_faces(
    restored: np.ndarray, upscaled: np.ndarray, check: FaceCheck
) -> np.ndarray:
    """`restored` with the frame's own content (`upscaled`, the frame at the still's size)
    inside every drifting face; `restored` itself when nothing drifted."""
    if not check.drifted:
        return restored
    if restored.shape != upscaled.shape:
        raise ValueError(f"restored {restored.shape} and upscaled {upscaled.shape} differ")
    mask = check.fallback_mask(*restored.shape[:2])[:, :, None]
    out = restored + mask * (upscaled.astype(np.float32, copy=False) - restored)
    return out.astype(restored.dtype, copy=False)
