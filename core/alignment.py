"""Aligning a reference to a frame at the frame's scale, and how far to trust the alignment.

Why a module of its own: every restorer that transfers a reference's detail (the still
restorer `guided`, a clip restorer aligning a key photo to each frame) needs the same answer,
"where does each frame pixel's content sit in the reference, and may I use it?", and needs it
at the frame's scale (cheap, and all the frame can vouch for). `align` gives it:

1. a dense flow, frame → reference (DIS or RAFT), and its forward-backward consistency;
2. the camera model: a homography fitted to the reliable flow and refined to a hundredth of a
   pixel on the images themselves (`core.motion`), which aligns the static scene everywhere,
   flat areas included;
3. the dense flow kept where it explains the frame clearly better (a subject that moved on its
   own, parallax), decided from how each warped reference disagrees with the frame;
4. a coherence map: where the combined flow is one smooth motion, and where it crosses a
   motion boundary (a moved subject's border, an occlusion), so that later checks can be
   stricter there;
5. a confidence map: structural agreement of the combined alignment with the frame,
   forward-backward consistency where the dense flow is used (on texture only: on flat areas
   flow is arbitrary and harmless there), and flat areas trusted only as far as their textured
   neighbourhood vouches for the camera model (a flat part of a moved subject cannot).

`Alignment.flow_window` then gives the flow for any window at another (full) resolution:
the camera model computed exactly there, the dense flow upsampled where it is used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.flow import FlowEstimator, forward_backward_confidence, warp
from core.images import to_luma
from core.motion import (
    REFINE_SIGMA,
    fit_homography,
    homography_flow,
    luma_gradient,
    prefer_dense,
    refine_homography,
    still_share,
)
from core.reliability import (
    blur,
    flow_coherence,
    structural_disagreement,
    texture_weight,
    trust_from_disagreement,
)
from core.resample import resize_window

FINE, COARSE = 1.0, 4.0
"""Band of the structural checks in frame pixels: above ~1 px the frame differs from any
reference by blur, noise and codec anyway; below ~4 px colour and exposure may differ."""
CHOICE_WINDOW = 1.5
"""σ (frame pixels) of the window that compares the camera model with the dense flow: small,
so a moved subject's own edge is told apart from the background next to it."""


@dataclass(slots=True)
class Alignment:
    """A frame's alignment to its reference, all at the frame's scale (H×W).

    `flow` is the dense flow; `homography` the camera model (None when none could be fitted);
    `dense` where the dense flow replaces the model (all ones without a model); `confidence`
    the trust in the combined alignment, in [0, 1]; `coherence` how surely the combined flow
    is one smooth motion around each pixel (→ 0 along motion boundaries, `flow_coherence`).
    """

    flow: np.ndarray
    homography: np.ndarray | None
    dense: np.ndarray
    confidence: np.ndarray
    coherence: np.ndarray

    def flow_window(
        self, out_h: int, out_w: int, ys: slice, xs: slice
    ) -> tuple[np.ndarray, np.ndarray]:
        """(flow, dense share) for rows `ys`, columns `xs` of the grid at out_h×out_w.

        The flow is in that grid's pixels: the camera model computed exactly for each pixel,
        the dense flow bilinearly upsampled (as `cv2.resize` would) where it is used.
        """
        h, w = self.flow.shape[:2]
        flow = resize_window(self.flow, out_h, out_w, ys, xs, "bilinear")
        flow[:, :, 0] *= out_w / w
        flow[:, :, 1] *= out_h / h
        rows, cols = flow.shape[:2]
        if self.homography is None:
            return flow, np.ones((rows, cols), np.float32)
        model = homography_flow(
            self.homography,
            (rows, cols),
            origin=(ys.indices(out_h)[0], xs.indices(out_w)[0]),
            scale=(h / out_h, w / out_w),
        )
        dense = resize_window(self.dense, out_h, out_w, ys, xs, "bilinear")
        return model + dense[:, :, None] * (flow - model), dense


def align(
    frame: np.ndarray,
    reference: np.ndarray,
    estimator: FlowEstimator,
    *,
    fb_sigma: float = 8.0,
    agree_floor: float = 0.01,
    agree_tolerance: float = 0.5,
    camera_model: bool = True,
    boundary_radius: int = 3,
    boundary_tolerance: float = 1.0,
) -> Alignment:
    """Align `reference` (already at the frame's size and softness) to `frame`.

    `fb_sigma`: forward-backward tolerance of the dense flow in pixels; `agree_floor`: band
    contrast too faint for its disagreement to matter; `agree_tolerance`: structural
    disagreement at which trust falls to 1/e; `camera_model`: fit a homography at all;
    `boundary_radius`, `boundary_tolerance`: the window (pixels) and flow spread (pixels) of
    `flow_coherence`, which marks motion boundaries (radius 0: none).
    """
    h, w = frame.shape[:2]
    fwd = estimator(frame, reference)
    bwd = estimator(reference, frame)
    conf_fb = forward_backward_confidence(fwd, bwd, sigma=fb_sigma)
    floor = agree_floor**2
    texture = texture_weight(frame, FINE, COARSE, floor)
    homography = fit_homography(fwd, texture * conf_fb) if camera_model else None
    dense = np.ones((h, w), np.float32)
    flow = fwd
    d_model = None
    if homography is not None:
        first = homography_flow(homography, (h, w))
        agrees = np.hypot(fwd[:, :, 0] - first[:, :, 0], fwd[:, :, 1] - first[:, :, 1]) < 1.0
        frame_luma = blur(to_luma(frame), REFINE_SIGMA)
        reference_luma = blur(to_luma(reference), REFINE_SIGMA)
        homography = refine_homography(
            frame_luma,
            reference_luma,
            luma_gradient(reference_luma),
            homography,
            agrees & (texture > 0.3),
        )
        model = homography_flow(homography, (h, w))

        def disagreement(candidate: np.ndarray) -> np.ndarray:
            aligned = warp(reference, candidate)
            return structural_disagreement(frame, aligned, FINE, COARSE, floor, CHOICE_WINDOW)

        d_model = disagreement(model)
        dense = prefer_dense(d_model, disagreement(fwd))
        flow = model + dense[:, :, None] * (fwd - model)
    ratio = structural_disagreement(frame, warp(reference, flow), FINE, COARSE, floor)
    # Forward-backward consistency speaks for the dense flow only, where it is used.
    confidence = trust_from_disagreement(ratio, agree_tolerance) * (
        1.0 - dense * texture * (1.0 - conf_fb)
    )
    if d_model is not None:
        # Flat areas are trusted as far as their textured neighbourhood vouches for the
        # camera model (a flat part of a moved subject cannot vouch for itself).
        confidence *= 1.0 - (1.0 - texture) * (1.0 - still_share(d_model, texture))
    coherence = flow_coherence(flow, boundary_radius, boundary_tolerance)
    return Alignment(fwd, homography, dense, confidence.astype(np.float32), coherence)
