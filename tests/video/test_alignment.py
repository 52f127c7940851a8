"""The building blocks of clip alignment: flow composition, the camera homography's precision,
and where carrying a predecessor is refused."""

from __future__ import annotations

import cv2
import numpy as np

from core.flow import make_flow_estimator
from core.images import to_gray_u8, to_luma
from core.motion import fit_homography, homography_flow, luma_gradient, refine_homography
from core.reliability import blur, texture_weight
from core.video.motion import compose, neighbour_motion, warp_cubic

from .conftest import generated_photo


def test_compose_adds_motions_along_the_path() -> None:
    h, w = 40, 50
    first = np.zeros((h, w, 2), np.float32)
    first[..., 0] = 2.0  # a → b: 2 px right
    second = np.zeros((h, w, 2), np.float32)
    second[..., 1] = np.arange(w, dtype=np.float32)[None, :] * 0.1  # b → c: depends on x
    out = compose(first, second)
    # At p the path goes to p + (2, 0), where b → c moves by 0.1·(x + 2) down.
    inner = (slice(5, -5), slice(5, -5))
    assert np.allclose(out[inner][..., 0], 2.0, atol=1e-4)
    expected = 0.1 * (np.arange(w, dtype=np.float32)[None, :] + 2.0)
    assert np.allclose(out[..., 1][inner], np.broadcast_to(expected, (h, w))[inner], atol=1e-3)


def test_homography_refined_to_hundredths_of_a_pixel() -> None:
    """A noisy frame seen through a known homography: dense flow alone is off by tenths of a
    pixel, the refined homography by hundredths (the reason the clip restorer uses it)."""
    key = generated_photo(240, 320, seed=5).astype(np.float32) / 255.0
    h, w = key.shape[:2]
    true = np.array([[0.995, -0.02, 3.3], [0.018, 1.004, -2.7], [1.5e-5, -1e-5, 1.0]])
    frame = cv2.warpPerspective(key, true, (w, h), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                                borderMode=cv2.BORDER_REFLECT)
    rng = np.random.default_rng(1)
    frame = np.clip(blur(frame, 0.7) + rng.normal(0, 0.02, frame.shape), 0, 1).astype(np.float32)
    flow = make_flow_estimator("dis", preset="medium")(
        to_gray_u8(blur(frame, 1.5)), to_gray_u8(blur(key, 1.5)))
    luma, key_luma = to_luma(frame), to_luma(key)
    texture = texture_weight(luma, 1.0, 4.0, 1e-4)
    start = fit_homography(flow, texture, step=8, threshold=1.0, min_weight=0.3, min_points=16)
    assert start is not None
    smooth_key = blur(key_luma, 1.0)
    refined = refine_homography(
        blur(luma, 1.0), smooth_key, luma_gradient(smooth_key), start, texture > 0.3
    )
    truth = homography_flow(true, (h, w))
    inner = (slice(16, -16), slice(16, -16))

    def error(candidate: np.ndarray) -> float:
        return float(np.sqrt(np.mean(np.sum((candidate - truth)[inner] ** 2, axis=2))))

    assert error(flow) > 0.1
    assert error(homography_flow(refined, (h, w))) < 0.03


def test_predecessor_is_refused_where_content_changed() -> None:
    """A patch that changed between two frames (a subject turning) is not carried; elsewhere,
    under pure camera motion, it is."""
    frame_prev = generated_photo(120, 160, seed=2).astype(np.float32) / 255.0
    shift = np.float32([[1, 0, 1.5], [0, 1, -1.0]])
    frame = cv2.warpAffine(frame_prev, shift, (160, 120), borderMode=cv2.BORDER_REFLECT)
    frame[40:80, 60:100] = frame[40:80, 60:100][::-1, ::-1]  # content turned on its own
    estimator = make_flow_estimator("dis", preset="fast")
    motion = neighbour_motion(frame, frame_prev, to_gray_u8(frame), to_gray_u8(frame_prev),
                              estimator, occlusion_sigma=1.0, change_tolerance=3.0)
    assert motion.valid[50:70, 70:90].mean() < 0.2
    assert motion.valid[10:30, 10:40].mean() > 0.8
    carried = warp_cubic(frame_prev, motion.to_prev)
    assert np.abs(carried - frame)[10:30, 10:40].mean() < 0.02
