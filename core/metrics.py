"""Image quality metrics on luma (Y, BT.601), as super-resolution papers report them.

`psnr_y` and `ssim_y` take float RGB in [0, 1] and evaluate on Y scaled to [0, 255] so the
numbers compare with published PSNR-Y/SSIM-Y. SSIM uses the standard Gaussian window
(σ = 1.5, 11×11) and constants K1 = 0.01, K2 = 0.03 (Wang et al. 2004).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from core.images import to_luma


def _y255(image: np.ndarray, crop: int) -> np.ndarray:
    y = to_luma(np.clip(image, 0.0, 1.0)).astype(np.float64) * 255.0
    if crop > 0:
        y = y[crop:-crop, crop:-crop]
    return y


def psnr_y(image: np.ndarray, reference: np.ndarray, crop: int = 0) -> float:
    """PSNR of the luma in dB (inf for identical images); `crop` trims a border first."""
    if image.shape != reference.shape:
        raise ValueError(f"shapes differ: {image.shape} vs {reference.shape}")
    mse = float(np.mean((_y255(image, crop) - _y255(reference, crop)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def ssim_y(image: np.ndarray, reference: np.ndarray, crop: int = 0) -> float:
    """Mean SSIM of the luma (1.0 for identical images)."""
    if image.shape != reference.shape:
        raise ValueError(f"shapes differ: {image.shape} vs {reference.shape}")
    x = _y255(image, crop)
    y = _y255(reference, crop)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(a: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(a, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mu_x, mu_y = blur(x), blur(y)
    sxx = blur(x * x) - mu_x**2
    syy = blur(y * y) - mu_y**2
    sxy = blur(x * y) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * sxy + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2)
    return float(np.mean(num / den))
