"""The alignment building blocks: the camera model, where it holds, and full-resolution flow."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from core.alignment import align
from core.flow import DISFlow
from core.images import to_luma
from core.motion import (
    REFINE_SIGMA,
    fit_homography,
    homography_flow,
    luma_gradient,
    refine_homography,
    still_share,
)
from core.reliability import blur, flow_coherence, texture_weight

H, W = 240, 320
# A hand-shake-sized homography: 0.8° turn, 0.5 % zoom, a shift, a little keystone.
TRUE = np.array(
    [[1.0049, -0.014, 3.2], [0.014, 1.0049, -2.1], [1.5e-5, -1.0e-5, 1.0]], np.float64
)


def _pair(image_factory, *, moved: bool = False):
    """frame, reference with reference(H·p) = frame(p); optionally a disc moved on its own."""
    reference = image_factory(H, W, seed=11)
    # warpPerspective samples src at M⁻¹·p unless told otherwise: WARP_INVERSE_MAP samples
    # the reference at TRUE·p, which is exactly "frame p shows reference TRUE(p)".
    frame = cv2.warpPerspective(
        reference, TRUE, (W, H), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT,
    )
    if moved:
        yy, xx = np.mgrid[0:H, 0:W]
        disc = (yy - 120) ** 2 + (xx - 200) ** 2 <= 40**2
        frame[disc] = np.roll(frame, (9, -12), (0, 1))[disc]
    return np.clip(frame, 0, 1), reference


def _error(flow: np.ndarray, homography: np.ndarray, keep: np.ndarray) -> float:
    truth = homography_flow(homography, flow.shape[:2])
    return float(np.median(np.hypot(*(flow - truth).transpose(2, 0, 1))[keep]))


def test_the_camera_model_is_recovered_to_a_fiftieth_of_a_pixel(image_factory):
    frame, reference = _pair(image_factory, moved=True)
    flow = DISFlow("medium")(frame, reference)
    weight = texture_weight(frame, 1.0, 4.0, 1e-4)
    first = fit_homography(flow, weight)
    assert first is not None
    inner = np.zeros((H, W), bool)
    inner[16:-16, 16:-16] = True
    agrees = np.hypot(*(flow - homography_flow(first, (H, W))).transpose(2, 0, 1)) < 1
    frame_luma = blur(to_luma(frame), REFINE_SIGMA)
    reference_luma = blur(to_luma(reference), REFINE_SIGMA)
    refined = refine_homography(
        frame_luma, reference_luma, luma_gradient(reference_luma), first, agrees & (weight > 0.3)
    )
    model = homography_flow(refined, (H, W))
    # The moved disc (an eighth of the picture) is an outlier, not a bias. Fitted to DIS
    # vectors alone the model is off by ~0.04 px here; Gauss-Newton on the images brings it
    # to ~0.003 px.
    assert _error(model, TRUE, inner) < 0.01
    assert _error(model, TRUE, inner) < _error(homography_flow(first, (H, W)), TRUE, inner)


def test_too_little_texture_gives_no_camera_model():
    flat = np.full((H, W, 2), 1.5, np.float32)
    assert fit_homography(flat, np.zeros((H, W), np.float32)) is None


def test_homography_flow_at_full_resolution_maps_pixel_centres():
    """A window of the full-resolution grid (3× the frame's) gets (H(p) − p)/s at its own
    pixel centres p = (P + ½)·s − ½: no upsampling of a coarse field."""
    full = homography_flow(TRUE, (30, 40), origin=(300, 450), scale=(1 / 3, 1 / 3))
    py, px = (300 + 7 + 0.5) / 3 - 0.5, (450 + 11 + 0.5) / 3 - 0.5
    q = TRUE @ np.array([px, py, 1.0])
    expected = ((q[0] / q[2] - px) * 3, (q[1] / q[2] - py) * 3)
    np.testing.assert_allclose(full[7, 11], expected, atol=1e-3)  # float32 coordinates


def test_flat_areas_are_trusted_only_where_textured_neighbours_vouch():
    texture = np.zeros((200, 300), np.float32)
    disagreement = np.zeros_like(texture)
    texture[:, 40:60] = 1.0  # a textured band the model explains ...
    texture[:, 140:160] = 1.0  # ... and one it does not (a subject moved there)
    disagreement[:, 140:160] = 1.0
    share = still_share(disagreement, texture, sigma=8.0)
    assert share[100, 65] > 0.9  # flat, next to texture that agrees
    assert share[100, 165] < 0.1  # flat, next to texture that moved
    assert share[100, 280] < 0.1  # flat, with nothing near to vouch for it


def test_coherence_marks_motion_boundaries_not_the_camera_motion():
    """A camera's flow spreads by hundredths of a pixel over a few pixels: coherent. A
    subject's own motion (a jump of 12 px at column 150) is marked within the radius of its
    border and nowhere else; the camera motion inside the subject does not count."""
    camera = homography_flow(TRUE, (H, W))
    assert flow_coherence(camera, 3, 1.0).min() > 0.99
    moved = camera.copy()
    moved[:, 150:, 0] += 12.0
    coherence = flow_coherence(moved, 3, 1.0)
    assert coherence[:, 147:153].max() < 1e-3  # within 3 px of the border
    assert coherence[:, :146].min() > 0.99 and coherence[:, 154:].min() > 0.99
    assert (flow_coherence(moved, 0, 1.0) == 1.0).all()  # radius 0: no boundary marked


@pytest.mark.parametrize("factor", [2, 3])
def test_flow_window_brings_the_alignment_to_full_resolution(image_factory, factor):
    frame, reference = _pair(image_factory)
    alignment = align(frame, reference, DISFlow("medium"))
    assert alignment.homography is not None
    out_h, out_w = H * factor, W * factor
    ys, xs = slice(100, 260), slice(333, 501)
    flow, dense = alignment.flow_window(out_h, out_w, ys, xs)
    # Where the camera model is used, the window's flow is the model's at full resolution:
    # the frame-scale flow of the true homography, upsampled, is within its alignment error.
    truth = cv2.resize(homography_flow(TRUE, (H, W)), (out_w, out_h)) * factor
    still = dense < 0.01
    assert still.mean() > 0.5
    err = np.hypot(*(flow - truth[ys, xs]).transpose(2, 0, 1))
    assert float(np.median(err[still])) < 0.05 * factor
