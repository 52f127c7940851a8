"""The contract of clip restorers: frames in, restored frames out, one at a time.

Why a contract of its own instead of `core.api.RestoreRequest`: a still restorer takes one
frame and returns one image at the reference's size; a clip restorer takes a whole video that
must never be held in memory at full resolution, so its input is an iterator of frames and its
output an iterator of restored frames, each handed on (to an encoder) as soon as it is done.
Progress and cancellation travel with the request exactly as for stills (`core.api`).

Images follow `core`'s conventions: RGB H×W×3, uint8 or float32 in [0, 1], upright (a
rotated video's frames turned the way it is displayed, as stills are decoded).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from core.api import CancelToken, ProgressCallback


def _no_progress(fraction: float, stage: str) -> None:
    return None


@dataclass(frozen=True, slots=True)
class Keyframe:
    """A high-quality still of one moment of the clip.

    `image` is the key photo (or the restored reselected still), at its own resolution; `index`
    is the number of the frame it shows (a Live Photo's still-image-time divided by the frame
    duration). The still may be larger than the frames and framed a little differently; the
    restorer aligns it to every frame.
    """

    image: np.ndarray
    index: int


@dataclass(slots=True)
class ClipRequest:
    """What a clip restorer needs.

    `frames` yields the decoded frames in display order; `frame_count`, when known, only serves
    progress. `scale` is the output size relative to the frames (1: the video's own
    resolution; at most the key photo's). `params` are the restorer's parameters (see its own
    schema, e.g. `core.video.params.GuidedVideoParams`).
    """

    frames: Iterable[np.ndarray]
    keyframes: Sequence[Keyframe]
    restorer: str = "guided-video"
    scale: float = 1.0
    frame_count: int | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    progress: ProgressCallback = _no_progress
    cancel: CancelToken = field(default_factory=CancelToken)


@dataclass(slots=True)
class ClipDiagnostics:
    """What happened during a clip restoration, filled in frame by frame.

    `reference_fraction` holds, per frame, the share of the output taken from the keyframes
    (the mean of the per-region reliability); `timings` adds up seconds per stage.
    """

    frames: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    reference_fraction: list[float] = field(default_factory=list)
    output_size: tuple[int, int] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ClipRestorer(Protocol):
    """A named clip restoration method; see `core.video.get_clip_restorer`.

    `restore_clip` returns an iterator of restored frames (uint8 H×W×3 at the output size), in
    the order the frames came; it reads the next input frame only when the next output is
    asked for, so memory stays at a few frames whatever the clip's length. `diagnostics` is
    filled as the iterator advances.
    """

    name: str
    diagnostics: ClipDiagnostics

    def restore_clip(self, request: ClipRequest) -> Iterator[np.ndarray]: ...
