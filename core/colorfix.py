"""Wavelet colour fix (StableSR): restored high frequencies, low frequencies from a source.

Why: a restorer may get detail right but drift in colour or tone; the frame (bicubically
upscaled) has the right colours. An à-trous decomposition with a 3×3 binomial kernel dilated
by 2^i (i < levels) splits each image into detail and a residual low band; the fix keeps the
target's detail and the source's low band. Any restorer can call it (design §4 step 7).
"""

from __future__ import annotations

import cv2
import numpy as np


def _atrous_blur(image: np.ndarray, dilation: int) -> np.ndarray:
    """Separable [1/4, 1/2, 1/4] blur with taps `dilation` apart, replicate borders."""
    d = dilation
    h, w = image.shape[:2]
    padded = cv2.copyMakeBorder(image, d, d, d, d, cv2.BORDER_REPLICATE)
    if padded.ndim == 2 and image.ndim == 3:
        padded = padded[:, :, None]
    rows = 0.5 * padded[d : d + h] + 0.25 * (padded[:h] + padded[2 * d : 2 * d + h])
    return 0.5 * rows[:, d : d + w] + 0.25 * (rows[:, :w] + rows[:, 2 * d : 2 * d + w])


def wavelet_low(image: np.ndarray, levels: int = 5) -> np.ndarray:
    """The residual low-frequency band after `levels` à-trous levels."""
    low = image.astype(np.float32, copy=False)
    for i in range(levels):
        low = _atrous_blur(low, 2**i)
    return low


def wavelet_color_fix(target: np.ndarray, source: np.ndarray, levels: int = 5) -> np.ndarray:
    """`target`'s high frequencies plus `source`'s low frequencies, clipped to [0, 1].

    Both are float32 H×W×3 of one size (resize the source first, e.g. bicubic upscale of the
    frame).
    """
    if target.shape != source.shape:
        raise ValueError(f"colour fix needs equal shapes, got {target.shape} and {source.shape}")
    if levels < 1:
        raise ValueError("levels must be ≥ 1")
    out = target - wavelet_low(target, levels) + wavelet_low(source, levels)
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)
