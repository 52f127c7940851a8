"""The configured restorer, seen from the settings: the options its constructor takes and the
digest of the weights it would load.

The scanner pins the digest on every job (it is part of the job identity) and the worker checks
it before running a job, so both ask this one module; the digest itself comes from the restorer
(`core.registry.weights_digest`), without importing torch for weight-free restorers.
"""

from __future__ import annotations

from typing import Any

from core.registry import weights_digest
from daemon.settings import Settings


def restorer_options(settings: Settings, name: str | None = None) -> dict[str, Any]:
    """Constructor options for restorer `name` (default: the configured one) from the settings.
    Only `livemoments` takes any: where its weights are and how to run them. None of them
    changes what a restoration produces except the weights, which jobs pin by digest."""
    cfg = settings.restorer
    if (name or cfg.name) == "livemoments":
        return {
            "checkpoint": cfg.checkpoint,
            "device": cfg.device,
            "low_memory": cfg.low_memory,
            "compile": cfg.compile,
        }
    return {}


def clip_restorer_options(settings: Settings, name: str) -> dict[str, Any]:
    """Constructor options for clip restorer `name`: `livemoments-video` runs the still
    restorer's model, on the device and memory settings of `[restorer]` (its checkpoint is a
    parameter of the job, pinned by digest); `guided-video` takes none."""
    if name == "livemoments-video":
        cfg = settings.restorer
        return {"device": cfg.device, "low_memory": cfg.low_memory, "compile": cfg.compile}
    return {}


def configured_weights_digest(settings: Settings, name: str | None = None) -> str:
    """The digest of the weights restorer `name` (default: the configured one) would load under
    `settings` ("none" for weight-free restorers): what a job identity pins."""
    name = name or settings.restorer.name
    return weights_digest(name, restorer_options(settings, name))
