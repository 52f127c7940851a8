"""The one contract between the daemon and every restorer.

Everything here is plain data: images are numpy arrays (H×W×3, RGB, float32 in [0, 1], or
8-bit for restorers that declare `keeps_uint8`),
so `core` stays free of files, databases and the daemon. A restorer receives a
`RestoreRequest` and returns a `RestoreResult`; progress and cancellation travel with the
request so that the worker can report per-tile progress and stop between steps.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

ProgressCallback = Callable[[float, str], None]
"""Called with a fraction in [0, 1] and a short human-readable stage description."""


class RestoreError(Exception):
    """A restoration could not be carried out (bad input, unusable model, ...)."""


class Cancelled(RestoreError):
    """Raised between steps when the request's cancel token was set."""


class OutOfDeviceMemory(RestoreError):
    """The accelerator ran out of memory; the caller may retry later or with smaller tiles."""


class DeviceUnavailable(RestoreError):
    """The requested accelerator is missing or unusable; the caller should defer, not fail."""


class CancelToken:
    """A thread-safe flag a restorer polls between steps (`raise_if_cancelled`)."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled("restoration cancelled")


def _no_progress(fraction: float, stage: str) -> None:
    return None


@dataclass(slots=True)
class RestoreRequest:
    """What a restorer needs: the frame to restore and the high-quality reference.

    `target` is the reselected low-quality frame (video resolution). `reference` is the
    original high-quality key photo; the result has its resolution. `reference_lq` is the
    video frame at the original key time T0, when one exists: it shows the reference
    through the same camera pipeline as the target and makes matching more reliable.
    """

    target: np.ndarray
    reference: np.ndarray
    reference_lq: np.ndarray | None = None
    restorer: str = "guided"
    params: Mapping[str, Any] = field(default_factory=dict)
    progress: ProgressCallback = _no_progress
    cancel: CancelToken = field(default_factory=CancelToken)
    seed: int = 0


@dataclass(slots=True)
class Diagnostics:
    """What happened during a restoration, for logs, the job row and benchmarks."""

    timings: dict[str, float] = field(default_factory=dict)
    tiles: int = 0
    #: mean confidence (0-1) of the reference-to-frame alignment; None for a restorer that
    #: aligns nothing (bicubic, sharpen), which has no confidence to be low
    flow_confidence: float | None = None
    peak_memory_bytes: int = 0
    device: str = "cpu"
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class RestoreResult:
    image: np.ndarray
    diagnostics: Diagnostics


class Restorer(Protocol):
    """A named restoration method; see `core.registry`.

    A restorer may also set a class attribute `keeps_uint8 = True`: it then receives 8-bit
    inputs as they are (H×W×3 uint8 instead of float32, a quarter of the memory: what keeps a
    108 MP reference bounded) and returns its result in the reference's dtype (uint8 for an
    8-bit reference, float32 otherwise). Without it every input arrives as float32.
    """

    name: str

    def restore(self, request: RestoreRequest) -> RestoreResult: ...
