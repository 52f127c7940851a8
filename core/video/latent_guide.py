"""The memory between frames of the diffusion path for clips: MGLD-VSR's guidance, tile by tile.

Why a module of its own: the still pipeline (`core.livemoments.pipeline`) restores one frame in
tiles and knows nothing of clips; the guidance math (`core.livemoments.video_guidance`) knows
latents but not tiles or frames. `LatentGuide` is what joins them: it keeps the previous
frame's final latent of every tile (tiles sit at the same place in every frame, since every
frame has the output's size), measures the motion from the current frame to the previous one
once per frame (DIS flow both ways at the video's resolution, forward-backward confidence as
the non-occlusion map, brought to the output's size), and hands the pipeline a per-step hook
(`hook`, a `TileStepHook`) that steers each tile towards its predecessor's warped latent.

Per tile, the pixel flow and confidence are cut out at the tile's window (padded like the tile:
zero confidence in the padding), brought to the latent grid, and cells whose flow points out
of the tile are masked too: the previous latent there belongs to a neighbouring tile and the
warp would only replicate the border.

Memory: one latent per tile (1/8 of the output's side, 16 channels: about 1 MB per 1024-px
tile in float32), the previous frame at the video's resolution and one flow field at the
output's resolution, whatever the clip's length. `errors` records, per frame, the latent
warping error between its final latents and its predecessor's warped ones (over the cells the
mask keeps): the quantity the guidance lowers, measured with and without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from core.flow import FlowEstimator, forward_backward_confidence, resize_flow
from core.images import resize
from core.livemoments.sampler import StepEnd
from core.livemoments.video_guidance import (
    MotionGuidance,
    inside_cells,
    latent_flow,
    latent_mask,
    latent_warping_error,
    warp_latent,
)
from core.tiling import Tile


@dataclass(slots=True)
class _Motion:
    """Current frame → previous frame at the output's size: flow (H×W×2) and trust (H×W)."""

    flow: np.ndarray
    confidence: np.ndarray


class LatentGuide:
    """Per-tile latents of the previous frame and the hook that guides the current one.

    Use: `begin_frame(frame, output_size)`, run the pipeline with `on_step_end=guide.hook`,
    then `end_frame()`. `strength` 0 never changes a latent (the hook returns None), so the
    frames are the still pipeline's, bit for bit, and `errors` still measure them.
    """

    def __init__(self, strength: float, flow: FlowEstimator, tile: int) -> None:
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"guidance strength must be within [0, 1], got {strength!r}")
        self.strength = float(strength)
        self.flow = flow
        self.tile = int(tile)
        self.errors: list[float | None] = []
        self._previous_frame: np.ndarray | None = None
        self._latents: dict[int, torch.Tensor] = {}
        self._next: dict[int, torch.Tensor] = {}
        self._motion: _Motion | None = None
        self._guidance: dict[tuple[int, ...], MotionGuidance] = {}
        self._error_sum = 0.0
        self._error_weight = 0.0

    @property
    def latents(self) -> dict[int, torch.Tensor]:
        """The last finished frame's final latent per tile index ([C, h, w])."""
        return dict(self._latents)

    def begin_frame(self, frame: np.ndarray, output_size: tuple[int, int]) -> float | None:
        """Measure the motion to the previous frame; returns its mean confidence (None for
        the first frame)."""
        self._next = {}
        self._guidance = {}
        self._error_sum = self._error_weight = 0.0
        self._motion = None
        previous, self._previous_frame = self._previous_frame, frame
        if previous is None or not self._latents:
            return None
        forward = self.flow(frame, previous)
        backward = self.flow(previous, frame)
        confidence = forward_backward_confidence(forward, backward)
        oh, ow = output_size
        if (oh, ow) != frame.shape[:2]:
            forward = resize_flow(forward, oh, ow)
            confidence = np.clip(resize(confidence, oh, ow, interpolation="bilinear"), 0, 1)
        self._motion = _Motion(forward.astype(np.float32), confidence.astype(np.float32))
        return float(confidence.mean())

    def end_frame(self) -> float | None:
        """Keep this frame's final latents for the next; returns its latent warping error
        against the previous frame (None when there was nothing to compare with)."""
        if len(self._next) == 0:
            raise RuntimeError("end_frame without a finished sampling (was the hook installed?)")
        self._latents = self._next
        self._next = {}
        error = self._error_sum / self._error_weight if self._error_weight > 0 else None
        self.errors.append(error)
        return error

    def hook(self, tiles: Sequence[Tile], state: StepEnd) -> torch.Tensor | None:
        """The pipeline's `on_step_end`: guide the tiles' latents, keep the final ones."""
        guidance = self._for(tiles, state.latent)
        out = guidance(state) if guidance is not None else None
        if state.is_last:
            final = out if out is not None else state.latent
            for row, tile in enumerate(tiles):
                self._next[tile.index] = final[row].detach().clone()
            if guidance is not None:
                for row in range(len(tiles)):
                    mask = guidance.mask[row : row + 1]
                    weight = float(mask.sum())
                    self._error_sum += weight * latent_warping_error(
                        final[row : row + 1], guidance.warped_previous[row : row + 1], mask
                    )
                    self._error_weight += weight
        return out

    def _for(self, tiles: Sequence[Tile], latent: torch.Tensor) -> MotionGuidance | None:
        """The guidance of this batch of tiles (built at its first step, then reused)."""
        if self._motion is None or any(t.index not in self._latents for t in tiles):
            return None
        key = tuple(t.index for t in tiles)
        if key not in self._guidance:
            warped, masks = [], []
            grid = tuple(latent.shape[-2:])
            for tile in tiles:
                flow, confidence = self._window(tile)
                cells = latent_flow(flow, grid).to(latent.device)
                mask = latent_mask(confidence, grid).to(latent.device) * inside_cells(cells)
                previous = self._latents[tile.index][None].to(torch.float32)
                warped.append(warp_latent(previous, cells))
                masks.append(mask)
            self._guidance[key] = MotionGuidance(
                torch.cat(warped), torch.cat(masks), strength=self.strength
            )
        return self._guidance[key]

    def _window(self, tile: Tile) -> tuple[np.ndarray, np.ndarray]:
        """The motion inside `tile`, padded to the full tile size as the pipeline pads tiles
        (no confidence in the padding)."""
        assert self._motion is not None
        ys, xs = tile.slices
        size = max(self.tile, tile.h, tile.w)
        flow = np.zeros((size, size, 2), np.float32)
        confidence = np.zeros((size, size), np.float32)
        flow[: tile.h, : tile.w] = self._motion.flow[ys, xs]
        confidence[: tile.h, : tile.w] = self._motion.confidence[ys, xs]
        return flow, confidence
