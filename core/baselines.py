"""Single-image baselines: what the frame looks like without the reference.

They matter as yardsticks (the benchmark's "bicubic" and "single-image" rows) and as honest
fallbacks: `bicubic` is exactly the guided restorer's answer where alignment fails.

Like `guided` they stream (`keeps_uint8`): the result is computed a band of rows at a time
(`core.resample.resize_window`, the numbers of `cv2.resize`) into the reference's dtype, so a
108 MP result is 324 MB of 8-bit pixels, never 1.3 GB of float32 plus copies.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from core.api import Diagnostics, RestoreRequest, RestoreResult
from core.images import finish_pixels
from core.registry import register
from core.resample import as_float, resize_window

BAND_ROWS = 256
"""Output rows computed at a time (12000 px wide: 37 MB of float32)."""

FLOAT32 = np.dtype(np.float32)
Rows = Callable[[int, int], np.ndarray]
"""rows(top, bottom) → the float32 result rows [top, bottom) before clipping."""


def banded(height: int, width: int, dtype: np.dtype, rows: Rows, margin: int = 0) -> np.ndarray:
    """The height×width×3 result in `dtype`, from `rows` a band at a time.

    Each band is computed with `margin` extra rows on both sides (where a filter needs its
    neighbours) and trimmed, so a band equals the same rows of the whole-image computation.
    """
    out = np.empty((height, width, 3), dtype)
    for top in range(0, height, BAND_ROWS):
        bottom = min(height, top + BAND_ROWS)
        first, last = max(0, top - margin), min(height, bottom + margin)
        band = rows(first, last)
        out[top:bottom] = finish_pixels(band[top - first : bottom - first], dtype)
    return out


def bicubic_upscale(
    target: np.ndarray, height: int, width: int, dtype: np.dtype = FLOAT32
) -> np.ndarray:
    """`target` upscaled bicubically to height×width, clipped, in `dtype`."""
    return banded(
        height,
        width,
        dtype,
        lambda top, bottom: resize_window(
            target, height, width, slice(top, bottom), slice(0, width), "bicubic"
        ),
    )


def lanczos_unsharp(
    target: np.ndarray,
    height: int,
    width: int,
    amount: float = 0.6,
    sigma: float = 1.5,
    dtype: np.dtype = FLOAT32,
) -> np.ndarray:
    """Lanczos upscale then an unsharp mask (amount·(x − blur_σ(x))), the usual phone trick."""
    reach = math.ceil(4 * sigma) + 1  # OpenCV's Gaussian kernel for float images: ±4σ

    def rows(top: int, bottom: int) -> np.ndarray:
        up = resize_window(target, height, width, slice(top, bottom), slice(0, width), "lanczos")
        blurred = cv2.GaussianBlur(up, (0, 0), sigma)
        return up + amount * (up - blurred)

    return banded(height, width, dtype, rows, margin=reach)


class _Baseline:
    name = "baseline"
    keeps_uint8 = True

    def __init__(self, **options: Any) -> None:
        self.options = options

    def _run(self, request: RestoreRequest, height: int, width: int) -> np.ndarray:
        raise NotImplementedError

    def restore(self, request: RestoreRequest) -> RestoreResult:
        started = time.perf_counter()
        height, width = request.reference.shape[:2]
        image = self._run(request, height, width)
        request.progress(1.0, "done")
        diag = Diagnostics(tiles=1, timings={"upscale": time.perf_counter() - started})
        return RestoreResult(image=image, diagnostics=diag)


def _out_dtype(request: RestoreRequest) -> np.dtype:
    return np.dtype(np.uint8 if request.reference.dtype == np.uint8 else np.float32)


@register("bicubic")
class BicubicRestorer(_Baseline):
    """The frame bicubically upscaled to the reference's size; ignores the reference."""

    name = "bicubic"

    def _run(self, request: RestoreRequest, height: int, width: int) -> np.ndarray:
        return bicubic_upscale(_as_frame(request), height, width, _out_dtype(request))


@register("sharpen")
class SharpenRestorer(_Baseline):
    """Lanczos upscale plus unsharp mask (params `amount`, `sigma`); ignores the reference."""

    name = "sharpen"

    def _run(self, request: RestoreRequest, height: int, width: int) -> np.ndarray:
        params = {**self.options, **dict(request.params)}
        return lanczos_unsharp(
            _as_frame(request),
            height,
            width,
            amount=float(params.get("amount", 0.6)),
            sigma=float(params.get("sigma", 1.5)),
            dtype=_out_dtype(request),
        )


def _as_frame(request: RestoreRequest) -> np.ndarray:
    """The frame as float32 (it is small: a video frame; 8-bit input is scaled)."""
    return as_float(request.target) if request.target.dtype == np.uint8 else request.target
