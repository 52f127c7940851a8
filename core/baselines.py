"""Single-image baselines: what the frame looks like without the reference.

They matter as yardsticks (the benchmark's "bicubic" and "single-image" rows) and as honest
fallbacks: `bicubic` is exactly the guided restorer's answer where alignment fails.
"""

from __future__ import annotations

import time
from typing import Any

import cv2
import numpy as np

from core.api import Diagnostics, RestoreRequest, RestoreResult
from core.images import resize
from core.registry import register


def bicubic_upscale(target: np.ndarray, height: int, width: int) -> np.ndarray:
    return np.clip(resize(target, height, width, interpolation="bicubic"), 0.0, 1.0)


def lanczos_unsharp(
    target: np.ndarray, height: int, width: int, amount: float = 0.6, sigma: float = 1.5
) -> np.ndarray:
    """Lanczos upscale then an unsharp mask (amount·(x − blur_σ(x))), the usual phone trick."""
    up = resize(target, height, width, interpolation="lanczos")
    blurred = cv2.GaussianBlur(up, (0, 0), sigma)
    return np.clip(up + amount * (up - blurred), 0.0, 1.0).astype(np.float32)


class _Baseline:
    name = "baseline"

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
        return RestoreResult(image=image.astype(np.float32, copy=False), diagnostics=diag)


@register("bicubic")
class BicubicRestorer(_Baseline):
    """The frame bicubically upscaled to the reference's size; ignores the reference."""

    name = "bicubic"

    def _run(self, request: RestoreRequest, height: int, width: int) -> np.ndarray:
        return bicubic_upscale(request.target, height, width)


@register("sharpen")
class SharpenRestorer(_Baseline):
    """Lanczos upscale plus unsharp mask (params `amount`, `sigma`); ignores the reference."""

    name = "sharpen"

    def _run(self, request: RestoreRequest, height: int, width: int) -> np.ndarray:
        params = {**self.options, **dict(request.params)}
        return lanczos_unsharp(
            request.target,
            height,
            width,
            amount=float(params.get("amount", 0.6)),
            sigma=float(params.get("sigma", 1.5)),
        )
