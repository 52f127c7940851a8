"""Tunables of the `guided-video` clip restorer and their schema.

Why a schema: parameters come from TOML, `--param KEY=VALUE` and job rows, so a word where a
number belongs, a NaN or a σ of 1e300 must be refused with a sentence naming the parameter
before any frame is decoded, not surface as a traceback deep in OpenCV. Defaults were chosen
with `bench/video.py` (clips from real photos, 2 cores).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, get_type_hints

from core.api import RestoreError
from core.params import coerce

_PRESETS = ("ultrafast", "fast", "medium")


@dataclass(frozen=True, slots=True)
class GuidedVideoParams:
    """All σ and distances are in pixels of the video frames (the scale flows work at)."""

    key_preset: str = "medium"
    """DIS preset of the flow from each frame to each keyframe (what the detail follows)."""
    neighbour_preset: str = "fast"
    """DIS preset of the flows between neighbouring frames (chaining and stabilisation)."""
    chain: bool = True
    """Chain each frame's keyframe flow through its predecessor's: it seeds the direct flow and
    replaces it, region by region, where it explains the keyframe better."""
    homography: bool = True
    """Take the camera's motion from one homography fitted and refined over the whole frame
    wherever the dense flow follows it (see `core.motion`)."""
    local_margin: float = 0.1
    """How much lower (structural disagreement) the dense flow's misfit must be than the
    homography's for the dense flow to be used instead (see `core.video.keyframes`)."""
    supersample: int = 2
    """The keyframe is warped on a grid this many times finer than the output and averaged
    down: a bilinear warp at the output's own size would blur it by a sub-pixel amount that
    changes from frame to frame (flicker)."""
    tone_sigma: float = 4.0
    """σ of the low band taken from the frame (colour and exposure), not from the keyframe."""
    agree_floor: float = 0.01
    """Band contrast (RMS, [0, 1] units) too faint for its disagreement to matter."""
    agree_tolerance: float = 0.3
    """Normalised structural disagreement at which reliability falls to 1/e. Stricter than the
    still restorer's: where the keyframe applies, frames of real photos score under 0.08 and
    small generated ones under 0.17 (99th percentiles), while a keyframe region showing
    unrelated texture scores 0.5-1 only (dense flow finds the least bad match in it)."""
    erode: int = 1
    """Shrink the reliable area by this many pixels (keeps halos off a moved subject)."""
    feather: float = 1.5
    """σ of the reliability map's soft edge, so seams between sources do not show."""
    occlusion_sigma: float = 1.0
    """Forward-backward tolerance of the neighbour flows: beyond it a pixel is taken as
    occluded or newly revealed and its predecessor is not used."""
    change_tolerance: float = 3.0
    """A predecessor whose warped content differs from the frame by more than this many times
    the clip's typical frame-to-frame residual is not used (a subject that changed shape)."""
    temporal_denoise: float = 0.5
    """Weight of the warped predecessor in the frame's own content (recursive, motion-
    compensated): noise and codec flicker average out where the predecessor applies."""
    temporal_trust: float = 0.5
    """Weight of the warped predecessor's reliability in the frame's: the choice between
    keyframe and own content does not flicker."""
    temporal_output: float = 0.3
    """Weight of the warped previous output in the output, where it agrees with the new one."""
    face_check: bool = True
    """Run the face-identity guard on every frame when `lmd[faces]` is installed."""
    seed: int | None = None
    """Accepted for interchangeability with stochastic restorers; guided-video is
    deterministic."""

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> GuidedVideoParams:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise RestoreError(f"guided-video: unknown parameters {', '.join(unknown)}")
        hints = get_type_hints(cls)
        params = cls(**{k: coerce("guided-video", k, v, hints[k]) for k, v in values.items()})
        for name, (low, high) in _RANGES.items():
            if not low <= getattr(params, name) <= high:
                raise RestoreError(
                    f"guided-video: parameter {name} must be within [{low:g}, {high:g}],"
                    f" got {getattr(params, name)!r}"
                )
        for name in ("key_preset", "neighbour_preset"):
            if getattr(params, name) not in _PRESETS:
                raise RestoreError(
                    f"guided-video: parameter {name} must be one of {', '.join(_PRESETS)},"
                    f" got {getattr(params, name)!r}"
                )
        return params


_RANGES: dict[str, tuple[float, float]] = {
    "supersample": (1, 4),
    "local_margin": (1e-3, 2),
    "tone_sigma": (0, 64),
    "agree_floor": (1e-6, 1),
    "agree_tolerance": (1e-3, 10),
    "erode": (0, 64),
    "feather": (0, 64),
    "occlusion_sigma": (1e-3, 64),
    "change_tolerance": (0.1, 100),
    "temporal_denoise": (0, 0.95),
    "temporal_trust": (0, 0.95),
    "temporal_output": (0, 0.95),
}
"""Where each number makes sense: weights of 1 would freeze the first frame for ever."""


def param_problems(values: Mapping[str, Any]) -> list[str]:
    """The schema as a settings check asks it: [] or the first problem, one sentence."""
    try:
        GuidedVideoParams.from_mapping(values)
    except RestoreError as exc:
        return [str(exc)]
    return []
