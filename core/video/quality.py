"""How good and how stable a restored clip is, against its ground truth.

Why these measures (the ones the works lmd follows report):
- per-frame PSNR-Y and SSIM-Y (`core.metrics`), mean and worst frame: a clip is judged by its
  worst moment as much as by its average;
- the warping error as MGLD-VSR reports it (after Lai et al., "Learning Blind Video Temporal
  Consistency", ECCV 2018): for each pair of neighbouring frames, the flow is estimated on the
  *ground truth* (here DIS, medium preset) with a forward-backward occlusion mask, frame t of
  the clip under test is warped onto frame t+1, and the squared RGB difference ([0, 1] units,
  summed over channels) is averaged over the non-occluded pixels; the mean over pairs is
  reported ×10⁻³ by the bench, as the paper does;
- the temporal deviation: the RMS, over pixels and pairs, of the difference between the clip's
  temporal differences and the ground truth's, (O(t+1) − O(t)) − (G(t+1) − G(t)), on luma in
  8-bit units. The warping error alone rewards blur (a frozen or smeared clip has none); this
  one is zero only when the clip changes exactly as the truth does;
- X-T slices: one row of every frame stacked over time, the picture of temporal stability
  MGLD-VSR shows (a stable clip gives smooth streaks, flicker gives ragged ones).

Frames are uint8 or float32 [0, 1] RGB; functions take the frames pairwise so a caller can
stream them (`TemporalMeter`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from core.flow import forward_backward_confidence, make_flow_estimator, warp
from core.images import to_gray_u8, to_luma
from core.metrics import psnr_y, ssim_y


def as_unit(image: np.ndarray) -> np.ndarray:
    """float32 in [0, 1] from uint8 or float."""
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    return image.astype(np.float32, copy=False)


def truth_motion(truth_a: np.ndarray, truth_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(flow b → a, non-occlusion mask on b's grid) from two ground-truth frames.

    The mask is the forward-backward check thresholded at 0.5 (occluded pixels are left out,
    as Lai et al. do)."""
    estimator = make_flow_estimator("dis", preset="medium")
    gray_a, gray_b = to_gray_u8(as_unit(truth_a)), to_gray_u8(as_unit(truth_b))
    b_to_a = estimator(gray_b, gray_a)
    a_to_b = estimator(gray_a, gray_b)
    mask = forward_backward_confidence(b_to_a, a_to_b, sigma=1.0) > 0.5
    return b_to_a, mask


def warping_error(
    clip_a: np.ndarray, clip_b: np.ndarray, b_to_a: np.ndarray, mask: np.ndarray
) -> float:
    """Mean over the mask of Σ_c (clip_b − warp(clip_a, b→a))², [0, 1] units."""
    a, b = as_unit(clip_a), as_unit(clip_b)
    diff = b - warp(a, b_to_a)
    per_pixel = np.sum(diff * diff, axis=2)
    count = int(mask.sum())
    return float(per_pixel[mask].sum() / count) if count else 0.0


def temporal_difference_sq(
    clip_a: np.ndarray, clip_b: np.ndarray, truth_a: np.ndarray, truth_b: np.ndarray
) -> float:
    """Mean of ((clip_b − clip_a) − (truth_b − truth_a))² on luma, 8-bit units squared."""
    def y(image: np.ndarray) -> np.ndarray:
        return to_luma(np.clip(as_unit(image), 0.0, 1.0)).astype(np.float64) * 255.0

    change = (y(clip_b) - y(clip_a)) - (y(truth_b) - y(truth_a))
    return float(np.mean(change * change))


def xt_slice_row(frame: np.ndarray, row: int) -> np.ndarray:
    """One row of a frame (W×3 uint8), a line of an X-T slice."""
    image = frame if frame.dtype == np.uint8 else np.clip(np.rint(frame * 255), 0, 255)
    return np.asarray(image[row], dtype=np.uint8)


@dataclass(slots=True)
class ClipScores:
    psnr: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)
    warping: list[float] = field(default_factory=list)
    deviation_sq: list[float] = field(default_factory=list)

    @property
    def mean_psnr(self) -> float:
        return float(np.mean(self.psnr))

    @property
    def worst_psnr(self) -> float:
        return float(np.min(self.psnr))

    @property
    def mean_ssim(self) -> float:
        return float(np.mean(self.ssim))

    @property
    def worst_ssim(self) -> float:
        return float(np.min(self.ssim))

    @property
    def warping_error(self) -> float:
        return float(np.mean(self.warping)) if self.warping else 0.0

    @property
    def temporal_deviation(self) -> float:
        return math.sqrt(float(np.mean(self.deviation_sq))) if self.deviation_sq else 0.0


class TemporalMeter:
    """Scores a clip frame by frame against its ground truth (two frames held at a time).

    `add(frame, truth)` in display order; the ground-truth motion of each pair is computed once
    per pair and can be shared between clips with `motions` (a list filled on first use)."""

    def __init__(self, motions: list[tuple[np.ndarray, np.ndarray]] | None = None) -> None:
        self.scores = ClipScores()
        self.motions = motions if motions is not None else []
        self._prev: tuple[np.ndarray, np.ndarray] | None = None
        self._pair = 0

    def add(self, frame: np.ndarray, truth: np.ndarray) -> None:
        f, g = as_unit(frame), as_unit(truth)
        self.scores.psnr.append(psnr_y(f, g))
        self.scores.ssim.append(ssim_y(f, g))
        if self._prev is not None:
            prev_f, prev_g = self._prev
            if self._pair >= len(self.motions):
                self.motions.append(truth_motion(prev_g, g))
            b_to_a, mask = self.motions[self._pair]
            self.scores.warping.append(warping_error(prev_f, f, b_to_a, mask))
            self.scores.deviation_sq.append(temporal_difference_sq(prev_f, f, prev_g, g))
            self._pair += 1
        self._prev = (f, g)
