"""Clip restoration: a Live Photo's video restored with its key photo as keyframe.

The entry point is `restore_clip(request)`: it returns an iterator of restored frames (uint8,
at the requested scale) that reads the request's frames one at a time, so a whole clip is
never held in memory at full resolution. Restorers are named (`available_clip_restorers`);
`guided-video` runs on the CPU without weights; `livemoments-video` (a GPU and the LiveMoments
weights) restores every frame with the diffusion restorer, guided between neighbouring frames.
See `core.video.api` for the request and `core.video.guided_video` and
`core.video.livemoments_video` for the methods. Importing this package is cheap (NumPy only).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from core.video.api import ClipDiagnostics, ClipRequest, ClipRestorer, Keyframe
from core.video.registry import (
    available_clip_restorers,
    clip_weights_digest,
    get_clip_restorer,
    register_clip,
    still_restorer_of,
    validate_clip_params,
)

__all__ = [
    "ClipDiagnostics",
    "ClipRequest",
    "ClipRestorer",
    "Keyframe",
    "available_clip_restorers",
    "clip_weights_digest",
    "get_clip_restorer",
    "register_clip",
    "restore_clip",
    "still_restorer_of",
    "validate_clip_params",
]


def restore_clip(
    request: ClipRequest, *, restorer: ClipRestorer | None = None, **options: Any
) -> Iterator[np.ndarray]:
    """Restored frames of `request`, one per input frame, in order.

    The request is checked before this returns (bad parameters, keyframes or scale raise
    `core.api.RestoreError` here, not on the first frame). A caller that wants the
    diagnostics keeps the restorer: `restorer.diagnostics` is filled as frames are taken.
    """
    if restorer is None:
        restorer = get_clip_restorer(request.restorer, **options)
    return restorer.restore_clip(request)
