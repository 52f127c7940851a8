"""The clip measures of `core.video.quality` say what they claim to."""

from __future__ import annotations

import numpy as np

from core.video.quality import TemporalMeter
from core.video.synthetic import SyntheticClip


def measure(frames: list[np.ndarray], clip: SyntheticClip, motions: list) -> TemporalMeter:
    meter = TemporalMeter(motions)
    for frame, truth in zip(frames, clip.truth, strict=True):
        meter.add(frame, truth)
    return meter


def test_deviation_counts_change_not_error(small_clip: SyntheticClip) -> None:
    motions: list = []
    truth = measure(small_clip.truth, small_clip, motions).scores
    assert truth.temporal_deviation == 0.0 and truth.mean_psnr == float("inf")
    # A constant error (every frame 6 levels brighter) costs PSNR but does not flicker.
    brighter = [np.clip(f.astype(np.int16) + 6, 0, 255).astype(np.uint8)
                for f in small_clip.truth]
    steady = measure(brighter, small_clip, motions).scores
    assert steady.mean_psnr < 35
    # Clipping at 255 changes a few pixels' error; 0.5 of a level allows for it.
    assert steady.temporal_deviation < 0.5
    # The same size of error alternating in sign flickers: 12 levels between neighbours.
    flicker = [np.clip(f.astype(np.int16) + (6 if i % 2 else -6), 0, 255).astype(np.uint8)
               for i, f in enumerate(small_clip.truth)]
    flickering = measure(flicker, small_clip, motions).scores
    assert abs(flickering.mean_psnr - steady.mean_psnr) < 0.5
    assert 11.0 < flickering.temporal_deviation < 12.5
    # The warping error of the truth is its own (interpolation) floor; flicker adds to it.
    assert flickering.warping_error > 2 * truth.warping_error
    assert len(motions) == len(small_clip.truth) - 1  # computed once, shared
