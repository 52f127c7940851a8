"""Synthetic images for the core tests, built in code (fast, deterministic)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest


def textured(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth-but-detailed RGB image: multi-scale noise, edges and colour (float32 [0,1])."""
    rng = np.random.default_rng(seed)
    out = np.zeros((height, width, 3), np.float32)
    for sigma, amp in ((12.0, 0.5), (4.0, 0.3), (1.2, 0.2)):
        layer = rng.standard_normal((height, width, 3)).astype(np.float32)
        layer = cv2.GaussianBlur(layer, (0, 0), sigma)
        layer /= layer.std() + 1e-6
        out += amp * layer
    out = 0.5 + 0.12 * out
    # a few hard-edged shapes so there are real edges
    for _ in range(6):
        cy, cx = int(rng.integers(0, height)), int(rng.integers(0, width))
        r = int(rng.integers(max(3, min(height, width) // 20), max(4, min(height, width) // 6)))
        color = tuple(float(c) for c in rng.random(3))
        cv2.circle(out, (cx, cy), r, color, thickness=-1)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


@pytest.fixture
def image_factory():
    return textured
