"""Parameters of the `livemoments-video` clip restorer and their schema.

Why a module of its own: settings loading and `lmd doctor` ask the schema without wanting torch
or diffusers imported, and the restorer (`core.video.livemoments_video`) needs both. The clip
restorer runs the `livemoments` still pipeline on every frame, so it takes every per-request
parameter of the still restorer (`core.livemoments.params`: checkpoint, tile, overlap,
tile_batch, seed, flow, color_fix, deterministic), checked by the still's own schema, plus the
strength of the motion guidance between neighbouring frames.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from core.livemoments.params import REQUEST_PARAMS
from core.livemoments.params import param_problems as still_problems

NAME = "livemoments-video"

DEFAULT_GUIDANCE_STRENGTH = 0.2
"""`core.livemoments.video_guidance.DEFAULT_STRENGTH`, repeated here so the schema needs no
torch (a test holds the two equal)."""

GUIDANCE_STRENGTH = "guidance_strength"
"""The motion-guidance strength, in [0, 1]: after each of the six steps the predicted clean
latent's difference from the previous frame's warped latent shrinks by (1 − strength) where the
flow between the frames holds (nothing where it is occluded), so 0.2 removes at most
1 − 0.8⁶ ≈ 74 % of it over the six steps; 0 is plain per-frame restoration, bit for bit; 1
copies the previous frame wherever the flow holds, its errors with it
(`core.livemoments.video_guidance`)."""

CLIP_PARAMS = (GUIDANCE_STRENGTH,)
CONSTRUCTOR_OPTIONS = ("device", "dtype", "low_memory", "compile")
"""Options of the still restorer's constructor, accepted by the clip restorer's constructor
(`get_clip_restorer("livemoments-video", device="cuda")`), not per clip."""


def param_problems(params: Mapping[str, Any]) -> list[str]:
    """Every problem with `params` for `livemoments-video`, one sentence each ([] if none)."""
    problems: list[str] = []
    for key in params:
        if key not in REQUEST_PARAMS and key not in CLIP_PARAMS:
            problems.append(
                f"{NAME}: unknown parameter {key!r}; known: "
                f"{', '.join((*REQUEST_PARAMS, *CLIP_PARAMS))}"
            )
    still = {k: v for k, v in params.items() if k in REQUEST_PARAMS}
    problems += [p.replace("livemoments:", f"{NAME}:", 1) for p in still_problems(still)]
    if GUIDANCE_STRENGTH in params:
        value = params[GUIDANCE_STRENGTH]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or not 0.0 <= value <= 1.0
        ):
            problems.append(
                f"{NAME}: parameter {GUIDANCE_STRENGTH} must be a number from 0 (no guidance) "
                f"to 1, got {value!r}"
            )
    return problems


def guidance_strength(params: Mapping[str, Any]) -> float:
    """The checked strength of `params` (call `param_problems` first)."""
    return float(params.get(GUIDANCE_STRENGTH, DEFAULT_GUIDANCE_STRENGTH))


def still_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The part of `params` the still restorer takes, with the seed fixed (0 unless given):
    every frame is sampled from the same noise, which keeps the noise itself from flickering."""
    out = {k: v for k, v in params.items() if k in REQUEST_PARAMS}
    if out.get("seed") is None:
        out["seed"] = 0
    return out
