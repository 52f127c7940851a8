"""Frame matching: which video frame a still shows (pure array math).

Stills and frames are compared as small luma images, each normalised to zero mean and unit
variance so that tone differences between the camera's still pipeline and the video stream
matter less than content. The distance is the mean squared difference of the normalised
images (0 = identical content, about 2 = unrelated).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def normalise(img: np.ndarray) -> np.ndarray:
    img = img.astype(np.float32)
    std = float(img.std())
    return (img - float(img.mean())) / (std if std > 1e-6 else 1.0)


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared difference of the normalised images, on their common top-left area."""
    h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
    if h == 0 or w == 0:
        return float("inf")
    return float(np.mean((normalise(a[:h, :w]) - normalise(b[:h, :w])) ** 2))


def distances(target: np.ndarray, frames: Sequence[np.ndarray]) -> list[float]:
    return [distance(target, f) for f in frames]


def nearest_index(times: Sequence[float], t: float) -> int:
    """Index of the time in `times` nearest to `t` (times need not be sorted)."""
    if not times:
        raise ValueError("no frames")
    return int(np.argmin(np.abs(np.asarray(times, dtype=np.float64) - t)))
