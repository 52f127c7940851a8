"""Randomised Live Photo degradations for training pairs: documented ranges, seeded draws.

Why: a restorer trained on one fixed degradation learns that degradation; the phones it meets
differ in video resolution, sharpening, noise and codec settings. `DegradationRanges` says what
varies and within which bounds; `sample_degradation(rng)` draws one `core.degrade.
LivePhotoDegradation` from a `numpy.random.Generator`, so a seed fixes every parameter (and
`LivePhotoDegradation.apply(image, seed)` then fixes the noise): a pair set is reproducible.

The default ranges bracket what iPhone and Android Live/Motion Photos show next to their stills
(the model page's "Real-ESRGAN-style pipeline tuned to phone video"; the fixed defaults of
`core.degrade` sit inside every range):

* scale 0.33–0.55: 1080p to 1440p video frames against 12 MP stills (1920/4032 = 0.476);
* blur σ 0.3–1.2 output px: scaler and ISP softness;
* shot noise 0–0.002 and read noise 0.002–0.012 (σ² = shot·x + read², in [0, 1] units);
* codec H.264, CRF 22–32, 2 frames encoded (the kept one is a P frame). HEVC (what iPhones
  record) can be drawn too (`codecs=("h264", "hevc")`), but is not by default: the libx265 that
  PyAV 18 bundles corrupts its heap on some small frames (seen at 34–36 px wide crops, a crash
  of the whole process rather than an error), and both codecs degrade alike at these rates.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from core.degrade import LivePhotoDegradation


@dataclass(frozen=True, slots=True)
class DegradationRanges:
    """Closed ranges (low, high) of each randomised parameter; `codecs` drawn uniformly."""

    scale: tuple[float, float] = (0.33, 0.55)
    blur_sigma: tuple[float, float] = (0.3, 1.2)
    shot_noise: tuple[float, float] = (0.0, 0.002)
    read_noise: tuple[float, float] = (0.002, 0.012)
    codecs: tuple[str | None, ...] = ("h264",)
    crf: tuple[int, int] = (22, 32)
    frames: int = 2

    def __post_init__(self) -> None:
        for name in ("scale", "blur_sigma", "shot_noise", "read_noise", "crf"):
            low, high = getattr(self, name)
            if not low <= high:
                raise ValueError(f"degradation range {name}: low {low} above high {high}")
        if not 0 < self.scale[0] <= self.scale[1] <= 1:
            raise ValueError(f"degradation scale must lie in (0, 1], got {self.scale}")
        if min(self.blur_sigma[0], self.shot_noise[0], self.read_noise[0]) < 0:
            raise ValueError("blur and noise ranges must not be negative")
        if not self.codecs:
            raise ValueError("degradation ranges need at least one codec (None: no codec)")
        unknown = [c for c in self.codecs if c not in ("h264", "hevc", None)]
        if unknown:
            raise ValueError(f"unknown codecs {unknown}; h264, hevc or None")

    def to_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def sample_degradation(
    rng: np.random.Generator, ranges: DegradationRanges | None = None
) -> LivePhotoDegradation:
    """One degradation with every parameter drawn from `ranges` (the defaults above).

    The draws are made in a fixed order, so one generator state gives one degradation.
    """
    r = ranges or DegradationRanges()
    scale = float(rng.uniform(*r.scale))
    blur = float(rng.uniform(*r.blur_sigma))
    shot = float(rng.uniform(*r.shot_noise))
    read = float(rng.uniform(*r.read_noise))
    codec = r.codecs[int(rng.integers(len(r.codecs)))]
    crf = int(rng.integers(r.crf[0], r.crf[1] + 1))
    return LivePhotoDegradation(
        scale=scale,
        blur_sigma=blur,
        shot_noise=shot,
        read_noise=read,
        codec=codec,
        crf=crf,
        frames=r.frames if codec else 1,
    )


def degradation_json(degradation: LivePhotoDegradation) -> dict[str, Any]:
    """A degradation's parameters as plain JSON values (for a pair manifest's provenance)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(degradation).items()}


__all__ = ["DegradationRanges", "degradation_json", "sample_degradation"]
