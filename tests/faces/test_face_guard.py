"""The face-identity guard on a real portrait: honest restorations pass, swapped or strongly
warped faces are caught, a drifting face falls back to the frame, a missing extra is reported.

Distances are compared with `DRIFT_THRESHOLD` itself, never with hard-coded figures: the
measured margins are in bench/face_drift.py and core/faces.py's docstring.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator

import cv2
import numpy as np
import pytest

pytest.importorskip("skimage", reason="scikit-image (test extra) ships the portrait")
from core import faces
from core.api import RestoreError
from tests.faces import edits


@pytest.fixture(scope="module")
def scene() -> edits.Scene:
    # Video-like frame: the still is 2.8x the frame (1440 px frame vs 4032 px still), JPEG q75.
    return edits.scene(scale=2.8, quality=75, noise=3.0)


@pytest.fixture(scope="module")
def restorations(scene: edits.Scene) -> dict[str, np.ndarray]:
    return {
        "honest": edits.honest(scene.still),
        "other0": edits.another_person(scene.still, scene.face, 0),
        "other1": edits.another_person(scene.still, scene.face, 1),
        "swirled": edits.swirled(scene.still, scene.face, 4.0),
    }


@pytest.fixture(scope="module")
def checks(scene: edits.Scene, restorations: dict[str, np.ndarray]) -> dict[str, faces.FaceCheck]:
    """Each restoration checked once (a check costs ~0.2 s of CPU per face)."""
    if not faces.availability()[0]:
        pytest.skip("lmd[faces] (dlib-bin, face-recognition-models) missing")
    return {name: faces.check_identity(scene.frame, img) for name, img in restorations.items()}


def _upscaled(scene: edits.Scene) -> np.ndarray:
    h, w = scene.still.shape[:2]
    return cv2.resize(scene.frame, (w, h), interpolation=cv2.INTER_CUBIC)


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over the smaller box's area."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return w * h / smaller


def _face_of(check: faces.FaceCheck, region: tuple[int, int, int, int]) -> faces.FaceComparison:
    found = [f for f in check.faces if _overlaps(f.box, region) > 0.5]
    assert len(found) == 1, f"the astronaut's face was not found once: {check.to_dict()}"
    return found[0]


def test_honest_restoration_passes(scene: edits.Scene, checks: dict[str, faces.FaceCheck]) -> None:
    check = checks["honest"]
    assert check.status == "passed", check.to_dict()
    face = _face_of(check, scene.face)
    assert face.distance < faces.DRIFT_THRESHOLD and not face.drift
    # boxes are in the restored still's pixels (2.8x the frame's; the face is ~87 px there)
    assert face.box[2] <= scene.still.shape[1] and face.box[3] <= scene.still.shape[0]
    assert face.box[2] - face.box[0] > 80 * 2.8 * 0.9
    assert check.to_dict()["faces"][0]["box"] == list(check.faces[0].box)


@pytest.mark.parametrize("name", ["other0", "other1"])
def test_another_persons_face_is_caught(
    scene: edits.Scene, checks: dict[str, faces.FaceCheck], name: str
) -> None:
    check = checks[name]
    assert check.status == "drift" and check.drifted
    face = _face_of(check, scene.face)
    assert face.drift and face.distance > faces.DRIFT_THRESHOLD
    assert any(_overlaps(box, scene.face) > 0.5 for box in check.drifting_boxes)


def test_strongly_warped_face_is_caught(
    scene: edits.Scene, checks: dict[str, faces.FaceCheck]
) -> None:
    assert checks["swirled"].status == "drift", checks["swirled"].to_dict()
    assert _face_of(checks["swirled"], scene.face).drift


def test_threshold_is_what_decides(
    scene: edits.Scene, checks: dict[str, faces.FaceCheck], restorations: dict[str, np.ndarray]
) -> None:
    """The same swirled face passes under a threshold above its distance: the verdict comes
    from the distance, not from anything else the check does."""
    distance = _face_of(checks["swirled"], scene.face).distance
    lenient = faces.check_identity(
        scene.frame, restorations["swirled"], threshold=distance + 0.01
    )
    assert not _face_of(lenient, scene.face).drift


def test_fallback_puts_the_frames_face_back(
    scene: edits.Scene, checks: dict[str, faces.FaceCheck], restorations: dict[str, np.ndarray]
) -> None:
    swapped, check = restorations["other0"], checks["other0"]
    fixed = faces.fall_back_inside_faces(swapped, _upscaled(scene), check)
    assert faces.check_identity(scene.frame, fixed).status == "passed"
    h, w = swapped.shape[:2]
    mask = check.fallback_mask(h, w)
    assert mask.shape == (h, w) and mask.dtype == np.float32
    left, top, right, bottom = scene.face
    # float32 blur of a 1.0 disc whose edge is > 3 sigma from the centre: 1 within float error
    assert mask[(top + bottom) // 2, (left + right) // 2] == pytest.approx(1.0, abs=1e-3)
    # Outside the feathered region the restoration is left exactly as it was.
    untouched = mask == 0
    assert untouched.mean() > 0.5
    assert np.array_equal(fixed[untouched], swapped[untouched])


def test_honest_restoration_is_returned_unchanged(
    scene: edits.Scene, checks: dict[str, faces.FaceCheck], restorations: dict[str, np.ndarray]
) -> None:
    restored = restorations["honest"]
    out = faces.fall_back_inside_faces(restored, _upscaled(scene), checks["honest"])
    assert out is restored
    assert not checks["honest"].fallback_mask(*restored.shape[:2]).any()


def test_a_scene_without_faces(checks: dict[str, faces.FaceCheck]) -> None:
    rng = np.random.default_rng(0)
    frame = cv2.GaussianBlur(rng.random((300, 400, 3)).astype(np.float32), (0, 0), 3)
    restored = cv2.resize(frame, (800, 600), interpolation=cv2.INTER_CUBIC)
    check = faces.check_identity(frame, restored)
    assert check.status == "no_faces" and check.faces == () and not check.drifted


def test_bad_images_give_a_clear_reason() -> None:
    with pytest.raises(RestoreError, match="frame"):
        faces.check_identity(np.zeros((4, 4, 5), np.float32), np.zeros((8, 8, 3), np.float32))
    with pytest.raises(RestoreError, match="restored"):
        faces.check_identity(np.zeros((4, 4, 3), np.float32), np.full((8, 8, 3), np.nan))


@pytest.fixture
def fresh_models() -> Iterator[None]:
    faces.forget_models()
    yield
    faces.forget_models()


def test_without_dlib_the_check_is_not_available(
    monkeypatch: pytest.MonkeyPatch, fresh_models: None
) -> None:
    real_import = importlib.import_module

    def no_dlib(name: str, package: str | None = None):  # type: ignore[no-untyped-def]
        if name == "dlib":
            raise ImportError("No module named 'dlib'")
        return real_import(name, package)

    monkeypatch.setattr(importlib, "import_module", no_dlib)
    frame = np.zeros((64, 64, 3), np.float32)
    check = faces.check_identity(frame, frame)
    assert check.status == "not_available" and not check.drifted
    assert "dlib" in check.reason and "lmd[faces]" in check.reason
    assert faces.availability() == (False, check.reason)
    assert check.to_dict()["status"] == "not_available"


def test_without_the_model_package_the_check_is_not_available(
    monkeypatch: pytest.MonkeyPatch, fresh_models: None
) -> None:
    real_find_spec = importlib.util.find_spec

    def no_models(name: str, package: str | None = None):  # type: ignore[no-untyped-def]
        return None if name == "face_recognition_models" else real_find_spec(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", no_models)
    check = faces.check_identity(np.zeros((8, 8, 3)), np.zeros((8, 8, 3)))
    assert check.status == "not_available"
    assert "face-recognition-models" in check.reason
