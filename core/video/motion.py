"""Temporal stabilisation: motion between neighbouring frames and what may be carried along it.

Why: a clip restored frame by frame jitters (each frame's alignment, reliability mask and noise
differ a little), and that jitter is what a viewer sees first. Each restored frame is therefore
informed by its predecessor, warped along the motion between the two frames, but only where
that motion can be trusted: not where a region is occluded or newly revealed (forward-backward
inconsistency of the neighbour flows) and not where the content itself changed (a subject that
turned or deformed: the warped predecessor does not look like the frame). Where it cannot be
trusted, the frame's own content is used as it is.

Conventions as in `core.flow`: a flow from a to b is H×W×2 (dx, dy) on a's grid, so
`warp_cubic(b, flow)` brings b onto a's grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from core.flow import FlowEstimator, forward_backward_confidence, identity_grid
from core.reliability import blur, channel_energy

RESIDUAL_FLOOR = 3 * (2 / 255) ** 2
"""Smallest typical residual energy (RGB summed, [0, 1] units) a tolerance is scaled by: two
8-bit levels per channel, the rounding and interpolation error any warp has. A clean clip
(no noise to set the typical level) would otherwise refuse its predecessor on every edge."""


def warp_cubic(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Sample `image` at p + flow(p) with bicubic interpolation (borders replicated).

    Why not `core.flow.warp` (bilinear): what is carried from frame to frame is warped again at
    every frame, and bilinear sampling blurs by an amount that depends on the sub-pixel phase,
    so a recursion built on it both softens and flickers.
    """
    h, w = flow.shape[:2]
    gx, gy = identity_grid(h, w)
    out = cv2.remap(
        image, gx + flow[:, :, 0], gy + flow[:, :, 1], cv2.INTER_CUBIC,
        borderMode=cv2.BORDER_REPLICATE,
    )
    if out.ndim == 2 and image.ndim == 3:
        out = out[:, :, None]
    return out


def compose(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The flow a→c from a→b (`first`) and b→c (`second`): first + second sampled at p + first.

    This is how a frame's alignment to the keyframe is chained through its predecessor's
    (frame t → t−1 → keyframe) when the direct flow is unreliable.
    """
    return first + warp_cubic(second, first)


@dataclass(slots=True)
class NeighbourMotion:
    """How frame t relates to frame t−1, at the frames' own resolution."""

    to_prev: np.ndarray
    """Flow t → t−1: `warp_cubic(x_prev, to_prev)` shows x_prev on frame t's grid."""
    valid: np.ndarray
    """Where the warped predecessor shows the same content as the frame, in [0, 1] (H×W)."""


def neighbour_motion(
    frame: np.ndarray,
    prev: np.ndarray,
    gray: np.ndarray,
    prev_gray: np.ndarray,
    estimator: FlowEstimator,
    occlusion_sigma: float,
    change_tolerance: float,
) -> NeighbourMotion:
    """Flow from `frame` to its predecessor, and where carrying the predecessor is safe.

    `gray`/`prev_gray` are the frames' 8-bit luma (what the flow estimator matches). Validity
    is the product of two checks: forward-backward consistency (occlusions and flow failures)
    and the content check: the local energy of frame − warped predecessor compared with its
    median over the frame (the clip's noise and codec level, which most pixels share), so a
    tolerance of 3 refuses residuals nine times the typical energy.
    """
    to_prev = estimator(gray, prev_gray)
    to_next = estimator(prev_gray, gray)
    consistent = forward_backward_confidence(to_prev, to_next, sigma=occlusion_sigma)
    residual = blur(channel_energy(frame - warp_cubic(prev, to_prev)), 1.5)
    typical = max(float(np.median(residual)), RESIDUAL_FLOOR)
    unchanged = np.exp(-residual / (change_tolerance**2 * typical)).astype(np.float32)
    return NeighbourMotion(to_prev=to_prev, valid=(consistent * unchanged).astype(np.float32))


def carry(current: np.ndarray, previous: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """current + weight·(previous − current): a recursive, per-pixel weighted average.

    `previous` is already warped onto the current grid; `weight` is H×W (broadcast over
    channels). With a constant weight w the steady state averages about (1 + w)/(1 − w) frames.
    """
    w = weight[:, :, None] if current.ndim == 3 and weight.ndim == 2 else weight
    return (current + w * (previous - current)).astype(np.float32, copy=False)


def agreement(current: np.ndarray, previous: np.ndarray, tolerance: float) -> np.ndarray:
    """How well `previous` (warped) agrees with `current` locally, in [0, 1] (H×W).

    The same normalisation as `neighbour_motion`'s content check: residual energy against its
    median over the image. Used to keep a previous output out where the new one differs by
    more than the usual frame-to-frame flicker (a detail that appeared, a subject that moved).
    """
    residual = blur(channel_energy(current - previous), 1.0)
    typical = max(float(np.median(residual)), RESIDUAL_FLOOR)
    return np.exp(-residual / (tolerance**2 * typical)).astype(np.float32)
