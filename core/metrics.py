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


def block_psnr_gain(
    image: np.ndarray, baseline: np.ndarray, truth: np.ndarray, block: int = 64
) -> np.ndarray:
    """PSNR-Y gain of `image` over `baseline` (dB) in every block×block block: rows×cols.

    Why: a restorer can win by several dB on average and still be worse than its baseline in
    one place (a ghost of a moved subject); the worst block shows it where the mean hides it.
    Partial blocks at the bottom and right edges are left out. Both errors get a floor of
    1e-6 (in 8-bit units squared) so blocks that are exact in both do not divide by zero.
    """
    if not image.shape == baseline.shape == truth.shape:
        raise ValueError(f"shapes differ: {image.shape}, {baseline.shape}, {truth.shape}")
    h, w = image.shape[:2]
    rows, cols = h // block, w // block
    if rows == 0 or cols == 0:
        raise ValueError(f"image {h}x{w} is smaller than one {block}-px block")
    y_truth = _y255(truth[: rows * block, : cols * block], 0)

    def block_mse(candidate: np.ndarray) -> np.ndarray:
        err = (_y255(candidate[: rows * block, : cols * block], 0) - y_truth) ** 2
        return err.reshape(rows, block, cols, block).mean(axis=(1, 3)) + 1e-6

    return (10.0 * np.log10(block_mse(baseline) / block_mse(image))).astype(np.float32)
