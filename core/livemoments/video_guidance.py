"""Motion-guided latent guidance for restoring a clip with the LiveMoments bridge (MGLD-VSR).

Why: restoring each frame of a clip with the diffusion bridge on its own gives each frame its own
small hallucinations, and they flicker. MGLD-VSR (Yang et al., "Motion-Guided Latent Diffusion
for Temporally Consistent Real-world Video Super-resolution", 2023) keeps neighbouring frames
consistent during sampling: the previous frame's latent is warped along the optical flow
(brought down to the latent grid) onto the current frame, and the gradient of the *latent
warping error* between it and the current frame's predicted clean latent, over the pixels the
flow does not occlude, is subtracted at every step.

Here, for the bridge's six Euler steps (`core.livemoments.sampler`): with the velocity v at
noise level σ, the predicted clean latent is x̂0 = z − σ·v (rectified flow: z = (1 − σ)·x0 + σ·ε
and v = ε − x0). The latent warping error is E = ½·Σ M·(x̂0 − W)² (W: the previous frame's final
latent warped onto this frame, M: non-occlusion at latent resolution, in [0, 1]); its gradient
with respect to z, holding v fixed (no back-propagation through the networks, so the guidance
costs no network call), is M·(x̂0 − W). After each Euler step (the sampler's `on_step_end`
hook) z moves by −`strength` times that gradient.

Strength, in [0, 1]: each step shrinks the predicted clean latent's discrepancy from the warped
previous frame by the factor (1 − strength·M) before the network's next move, so where the flow
holds (M = 1) `DEFAULT_STRENGTH` = 0.2 removes at most 1 − 0.8⁶ ≈ 74 % of it over the six steps
(the network may pull part of it back), and nothing where the flow is occluded (M = 0): new
content and a subject that turned stay the network's own. Larger values copy the previous frame
more faithfully, its errors with it; 0 is plain sampling.

Everything here is tensor math; the tile loop that keeps each tile's previous latent belongs to
the clip restorer (`core.video.livemoments_video`), which hands it to the still pipeline's
per-step hook.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from core.livemoments.sampler import StepCallback, StepEnd, VelocityFn, euler_sample

DEFAULT_STRENGTH = 0.2
LATENT_FACTOR = 8
"""Pixels per latent cell of the SD3 VAE."""


def latent_flow(flow: np.ndarray, latent_size: tuple[int, int]) -> torch.Tensor:
    """A pixel flow (H×W×2, current frame → previous, `core.flow`'s convention) on the latent
    grid: [1, 2, h, w], vectors in latent cells (area-averaged, divided by the scale)."""
    import cv2

    h, w = latent_size
    small = cv2.resize(np.ascontiguousarray(flow, dtype=np.float32), (w, h),
                       interpolation=cv2.INTER_AREA)
    small[..., 0] *= w / flow.shape[1]
    small[..., 1] *= h / flow.shape[0]
    return torch.from_numpy(small).permute(2, 0, 1)[None].contiguous()


def latent_mask(confidence: np.ndarray, latent_size: tuple[int, int]) -> torch.Tensor:
    """A pixel non-occlusion map (H×W in [0, 1], e.g. forward-backward confidence) on the latent
    grid: [1, 1, h, w], area-averaged (a cell half occluded counts half)."""
    import cv2

    h, w = latent_size
    small = cv2.resize(np.ascontiguousarray(confidence, dtype=np.float32), (w, h),
                       interpolation=cv2.INTER_AREA)
    return torch.from_numpy(np.clip(small, 0.0, 1.0))[None, None].contiguous()


def _landing(flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) [B, h, w]: where each cell p lands, p + flow(p) (flow [B, 2, h, w] in cells)."""
    _, _, h, w = flow.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=flow.dtype, device=flow.device),
        torch.arange(w, dtype=flow.dtype, device=flow.device),
        indexing="ij",
    )
    return xs + flow[:, 0], ys + flow[:, 1]


def warp_latent(latent: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample `latent` [B, C, h, w] at p + flow(p) (flow [B or 1, 2, h, w] in cells), bilinear,
    borders replicated: the previous frame's latent brought onto the current frame's grid."""
    b, _, h, w = latent.shape
    x, y = _landing(flow)
    # grid_sample's normalised coordinates with align_corners=True: -1 and 1 are the centres
    # of the first and last cells, the pixel-centre convention of `core.flow`.
    grid = torch.stack([2.0 * x / max(w - 1, 1) - 1.0, 2.0 * y / max(h - 1, 1) - 1.0], dim=-1)
    grid = grid.expand(b, -1, -1, -1).to(latent.dtype)
    return F.grid_sample(latent, grid, mode="bilinear", padding_mode="border",
                         align_corners=True)


def latent_warping_error(
    latent: torch.Tensor, warped_previous: torch.Tensor, mask: torch.Tensor
) -> float:
    """Σ M·(latent − W)² / (Σ M · channels): the mean squared latent difference where the flow
    holds (0 when the mask is empty)."""
    weight = mask.expand_as(latent).to(torch.float64)
    total = float(weight.sum())
    if total <= 0:
        return 0.0
    diff = (latent.to(torch.float64) - warped_previous.to(torch.float64)) ** 2
    return float((diff * weight).sum() / total)


def inside_cells(flow: torch.Tensor) -> torch.Tensor:
    """[B, 1, h, w]: 1 where p + flow(p) (flow [B, 2, h, w] in cells) lands inside the grid.

    Why: `warp_latent` replicates the border for points outside, which for a tile means content
    that came in from a neighbouring tile; the guidance must not pull towards that copy."""
    _, _, h, w = flow.shape
    x, y = _landing(flow)
    inside = (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
    return inside[:, None].to(flow.dtype)


@dataclass(slots=True)
class MotionGuidance:
    """What guides one frame's sampling: the previous frame's final latent warped onto this
    frame (`warp_latent`), where that holds (`latent_mask`), and how strongly.

    Called after every sampler step (it is a `core.livemoments.sampler.StepEndCallback`), it
    moves the latent by −strength times the gradient of the latent warping error,
    M·(x̂0 − W); the step's velocity is held fixed, so this costs no network call. Applied
    after the Euler step rather than before it, it is the same update: the step does not
    change x̂0 (z_next − σ_next·v = z − σ·v), and the step is linear in z.
    """

    warped_previous: torch.Tensor
    mask: torch.Tensor
    strength: float = DEFAULT_STRENGTH

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.strength) <= 1.0:
            raise ValueError(f"guidance strength must be within [0, 1], got {self.strength!r}")

    def __call__(self, state: StepEnd) -> torch.Tensor | None:
        if self.strength <= 0:
            return None
        work = torch.promote_types(state.latent.dtype, torch.float32)
        predicted = state.predicted_clean(work)
        target = self.warped_previous.to(work)
        gradient = self.mask.to(work) * (predicted - target)
        return (state.latent.to(work) - self.strength * gradient).to(state.latent.dtype)


def guided_euler_sample(
    velocity_fn: VelocityFn,
    z0: torch.Tensor,
    guidance: MotionGuidance | None,
    sigmas: Sequence[float] | None = None,
    on_step: StepCallback | None = None,
) -> torch.Tensor:
    """`core.livemoments.sampler.euler_sample` with the motion guidance applied at every step.

    Without guidance (or at strength 0) the result is exactly `euler_sample`'s: the same
    velocity calls, the same update, in the same precision.
    """
    return euler_sample(velocity_fn, z0, sigmas, on_step=on_step, on_step_end=guidance)
