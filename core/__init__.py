"""lmd's restoration core: arrays in, arrays out, no files, no database, no `daemon`.

One entry point, `restore(request)`, runs the restorer named in the request (see
`core.registry`). Importing this package is cheap: restorers, torch and diffusers are imported
only when a restorer that needs them is first used.
"""

from __future__ import annotations

import time
from typing import Any

from core.api import (
    Cancelled,
    CancelToken,
    DeviceUnavailable,
    Diagnostics,
    OutOfDeviceMemory,
    ProgressCallback,
    RestoreError,
    Restorer,
    RestoreRequest,
    RestoreResult,
)
from core.images import validate_image
from core.memory import PeakMemory
from core.registry import available, get_restorer, register

__all__ = [
    "CancelToken",
    "Cancelled",
    "DeviceUnavailable",
    "Diagnostics",
    "OutOfDeviceMemory",
    "ProgressCallback",
    "RestoreError",
    "RestoreRequest",
    "RestoreResult",
    "Restorer",
    "available",
    "get_restorer",
    "register",
    "restore",
]


def restore(
    request: RestoreRequest, *, restorer: Restorer | None = None, **options: Any
) -> RestoreResult:
    """Run `request.restorer` on the request; `options` go to the restorer's constructor.

    A long-lived caller (the daemon's worker) passes the `restorer` instance it keeps, so a
    heavy model is loaded once and every call still gets the same checks.

    Inputs are checked and normalised to float32 H×W×3 in [0, 1] first, so every restorer
    can rely on that; a restorer with `keeps_uint8` gets 8-bit inputs as they are and returns
    an 8-bit result for an 8-bit reference (see `core.api.Restorer`). The result is always at
    the reference's resolution. Total time and the process's peak memory are filled into the
    diagnostics when the restorer left them empty.
    Callers that restore many images with a heavy model should keep an instance from
    `get_restorer` instead (this builds a new one each call).
    """
    if restorer is None:
        restorer = get_restorer(request.restorer, **options)
    keep = bool(getattr(restorer, "keeps_uint8", False))
    request.target = validate_image(request.target, "target", keep_uint8=keep)
    request.reference = validate_image(request.reference, "reference", keep_uint8=keep)
    if request.reference_lq is not None:
        request.reference_lq = validate_image(
            request.reference_lq, "reference_lq", keep_uint8=keep
        )
    started = time.perf_counter()
    with PeakMemory() as peak:
        result = restorer.restore(request)
    diag = result.diagnostics
    diag.timings.setdefault("total", time.perf_counter() - started)
    if diag.peak_memory_bytes == 0:
        diag.peak_memory_bytes = peak.peak_bytes
    ref_shape = request.reference.shape[:2]
    if result.image.shape[:2] != ref_shape:
        raise RestoreError(
            f"restorer {request.restorer!r} returned {result.image.shape[:2]}, "
            f"expected the reference's {ref_shape}"
        )
    if keep and result.image.dtype != request.reference.dtype:
        raise RestoreError(
            f"restorer {request.restorer!r} returned {result.image.dtype} pixels for a "
            f"{request.reference.dtype} reference"
        )
    return result
