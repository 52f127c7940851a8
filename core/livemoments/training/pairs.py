"""Training pairs from arrays: synthetic ones from video frames, real ones from Live Photos.

Video pairs (the paper's recipe, Sec. 4.1): two frames of a high-quality video `interval` frames
apart (5 by default) play the original key photo (the reference) and the reselected frame's
ground truth (the target); which one comes first is drawn, since people reselect either way. A
tile-sized crop of the target is the ground truth `hq`; its reference crop is placed the way
inference places it (Patch Correspondence Retrieval on the mean flow, `core.tiling`); both go
through one Live Photo degradation drawn from documented ranges (`core.degrade_random`), with
independent noise, giving `lq` and `ref_lq` at video resolution. Every draw comes from a generator
seeded by (seed, clip, pair), so a seed gives the same pairs whatever else is in the run.

Library pairs: a Live Photo's video frame at T0 shows the same instant as its key photo, through
the same phone's video path: a real low/high-quality pair no public dataset has. The frame and
the photo do not line up pixel for pixel (video crop, stabilisation, lens correction), so the
photo is downscaled to the frame's size, flow photo→frame is estimated (DIS) and the frame is
resampled onto the photo's grid, crop by crop, with exact sub-pixel geometry; forward-backward
consistency gives each crop an alignment confidence (crops below `min_confidence` are skipped).
The reference is the key photo itself, cropped `max_shift` px away at most (a random shift), and
`ref_lq` the aligned frame at that crop, so the motion input is a real (if simple) translation
rather than zero. Such pairs teach the owner's camera, not large motion: mix them with video
pairs (fit takes several pair sets).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from core.degrade_random import DegradationRanges, degradation_json, sample_degradation
from core.flow import DISFlow, FlowEstimator, forward_backward_confidence, resize_flow
from core.images import resize
from core.livemoments.config import TILE_MULTIPLE
from core.livemoments.training.dataset import PairImages
from core.tiling import Tile, pcr_crop_origin

PCR_FLOW_SIDE = 512
"""Long side at which video pairs estimate the target→reference flow for crop placement (DIS
"medium", the restorer's global flow): PCR uses only the flow's mean over the tile, and DIS at
4K would cost seconds per pair."""


@dataclass(frozen=True, slots=True)
class BuiltPair:
    """A pair and what the manifest says about it."""

    images: PairImages
    source: dict[str, Any]
    degradation: dict[str, Any] | None = None
    alignment_confidence: float | None = None


def check_tile(tile: int) -> None:
    if tile < TILE_MULTIPLE or tile % TILE_MULTIPLE:
        raise ValueError(f"tile must be a positive multiple of {TILE_MULTIPLE}, got {tile}")


def _float(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    return np.clip(image.astype(np.float32, copy=False), 0.0, 1.0)


# --------------------------------------------------------------------------- video pairs


@dataclass(frozen=True, slots=True)
class VideoPairOptions:
    """How pairs are cut from a clip; every field is recorded in the manifest."""

    tile: int = 1024
    interval: int = 5
    """Frames between the reference and the target (the paper's temporal gap)."""
    stride: int = 15
    """Frames between the starts of successive pairs of one clip."""
    crops: int = 1
    """Target crops per frame pair (each with its own degradation)."""
    seed: int = 0
    ranges: DegradationRanges = field(default_factory=DegradationRanges)

    def __post_init__(self) -> None:
        check_tile(self.tile)
        if self.interval < 1 or self.stride < 1 or self.crops < 1:
            raise ValueError("interval, stride and crops must be at least 1")

    def to_json(self) -> dict[str, Any]:
        return {
            "tile": self.tile,
            "interval": self.interval,
            "stride": self.stride,
            "crops": self.crops,
            "seed": self.seed,
            "ranges": self.ranges.to_json(),
        }


def pcr_flow(target: np.ndarray, reference: np.ndarray, flow: FlowEstimator) -> np.ndarray:
    """Target→reference flow at full size, estimated at `PCR_FLOW_SIDE` (see there)."""
    h, w = target.shape[:2]
    factor = min(1.0, PCR_FLOW_SIDE / max(h, w))
    sh, sw = max(16, round(h * factor)), max(16, round(w * factor))
    small = flow(resize(target, sh, sw, interpolation="area"),
                 resize(reference, sh, sw, interpolation="area"))
    return resize_flow(small, h, w)


def video_frame_pair(
    target: np.ndarray,
    reference: np.ndarray,
    options: VideoPairOptions,
    rng: np.random.Generator,
    flow: FlowEstimator | None = None,
) -> Iterator[BuiltPair]:
    """`options.crops` pairs from one (target, reference) frame pair; sources say where."""
    tile = options.tile
    h, w = target.shape[:2]
    if h < tile or w < tile or reference.shape[:2] != (h, w):
        raise ValueError(f"frames {target.shape[:2]}/{reference.shape[:2]} hold no {tile}² tile")
    flow_tr = pcr_flow(_float(target), _float(reference), flow or DISFlow("medium"))
    for _ in range(options.crops):
        y, x = int(rng.integers(0, h - tile + 1)), int(rng.integers(0, w - tile + 1))
        ry, rx = pcr_crop_origin(flow_tr, Tile(y, x, tile, tile), None, None, (h, w))
        hq = _float(target[y : y + tile, x : x + tile])
        ref = _float(reference[ry : ry + tile, rx : rx + tile])
        degradation = sample_degradation(rng, options.ranges)
        seeds = rng.integers(0, 2**31, size=2)
        lq = degradation.apply(hq, seed=int(seeds[0]))
        ref_lq = degradation.apply(ref, seed=int(seeds[1]))
        yield BuiltPair(
            images=PairImages(hq=hq, lq=lq, ref=ref, ref_lq=ref_lq),
            source={"crop": [y, x], "reference_crop": [ry, rx],
                    "noise_seeds": [int(s) for s in seeds]},
            degradation=degradation_json(degradation),
        )


def video_pairs(
    frames: Iterable[np.ndarray],
    options: VideoPairOptions,
    clip_index: int = 0,
    flow: FlowEstimator | None = None,
) -> Iterator[BuiltPair]:
    """Pairs from one clip's frames (upright RGB, uint8 or float), read once, in order.

    Only `interval + 1` frames are held at a time. Frame pair k uses frames s and s + interval
    with s = k·stride; its generator is seeded by (seed, clip_index, k), so the pairs of one
    clip do not depend on the other clips of the run.
    """
    window: deque[np.ndarray] = deque(maxlen=options.interval + 1)
    for index, frame in enumerate(frames):
        window.append(frame)
        start = index - options.interval
        if start < 0 or start % options.stride:
            continue
        k = start // options.stride
        rng = np.random.default_rng([options.seed, clip_index, k])
        later_is_target = bool(rng.integers(2))
        first, last = window[0], window[-1]
        target, reference = (last, first) if later_is_target else (first, last)
        t_index, r_index = (index, start) if later_is_target else (start, index)
        for built in video_frame_pair(target, reference, options, rng, flow):
            source = {"frame_target": t_index, "frame_reference": r_index, **built.source}
            yield BuiltPair(built.images, source, built.degradation)


# --------------------------------------------------------------------------- library pairs


@dataclass(frozen=True, slots=True)
class LibraryPairOptions:
    tile: int = 1024
    crops: int = 2
    """Crops per Live Photo."""
    max_shift: int | None = None
    """Largest reference shift in px (default tile // 8); 0 makes the reference the target."""
    min_confidence: float = 0.5
    """Crops whose mean alignment confidence is lower are skipped."""
    seed: int = 0

    def __post_init__(self) -> None:
        check_tile(self.tile)
        if self.crops < 1:
            raise ValueError("crops must be at least 1")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"min_confidence must lie in [0, 1], got {self.min_confidence}")

    @property
    def shift(self) -> int:
        return self.tile // 8 if self.max_shift is None else max(0, int(self.max_shift))

    def to_json(self) -> dict[str, Any]:
        return {"tile": self.tile, "crops": self.crops, "max_shift": self.shift,
                "min_confidence": self.min_confidence, "seed": self.seed}


@dataclass(slots=True)
class Alignment:
    """The video frame's flow onto the key photo's grid, at video resolution."""

    frame: np.ndarray
    flow: np.ndarray
    """key photo (downscaled to the frame's size) → frame, on the downscaled photo's grid."""
    confidence: np.ndarray
    scale_y: float
    scale_x: float
    """Frame pixels per photo pixel."""

    def sample(self, y: int, x: int, tile: int, out_h: int, out_w: int) -> tuple[np.ndarray, float]:
        """The frame resampled onto photo crop [y, y+tile)² at out_h × out_w, and its mean
        confidence. Output pixel i covers photo rows y + i·tile/out_h … and its centre maps to
        the downscaled photo at (centre + ½)·scale − ½, then through the flow into the frame."""
        rows = (y + (np.arange(out_h) + 0.5) * tile / out_h) * self.scale_y - 0.5
        cols = (x + (np.arange(out_w) + 0.5) * tile / out_w) * self.scale_x - 0.5
        map_x, map_y = np.meshgrid(cols.astype(np.float32), rows.astype(np.float32))
        flow = cv2.remap(self.flow, map_x, map_y, cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
        conf = cv2.remap(self.confidence, map_x, map_y, cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        image = cv2.remap(self.frame, map_x + flow[..., 0], map_y + flow[..., 1],
                          cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return np.clip(image, 0.0, 1.0), float(conf.mean())


ASPECT_TOLERANCE = 0.02
"""How far the frame's and the photo's aspect ratios may differ (rounding of video sizes)."""


def align_frame(
    key_photo: np.ndarray, frame: np.ndarray, flow: FlowEstimator | None = None
) -> Alignment:
    """Flow from the key photo (downscaled to the frame) to the T0 frame, with its confidence."""
    kh, kw = key_photo.shape[:2]
    fh, fw = frame.shape[:2]
    if abs((fh / fw) / (kh / kw) - 1.0) > ASPECT_TOLERANCE:
        raise ValueError(f"video frame {fw}×{fh} and photo {kw}×{kh} differ in aspect ratio")
    if fh > kh or fw > kw:
        raise ValueError(f"video frame {fw}×{fh} is larger than the photo {kw}×{kh}")
    estimator = flow or DISFlow("medium")
    frame_f = _float(frame)
    small = resize(_float(key_photo), fh, fw, interpolation="area")
    forward = estimator(small, frame_f)
    backward = estimator(frame_f, small)
    confidence = forward_backward_confidence(forward, backward)
    return Alignment(frame_f, forward, confidence, fh / kh, fw / kw)


def library_pairs(
    key_photo: np.ndarray,
    frame: np.ndarray,
    options: LibraryPairOptions,
    photo_index: int = 0,
    flow: FlowEstimator | None = None,
) -> tuple[list[BuiltPair], list[str]]:
    """Pairs from one Live Photo: its key photo and its video frame at T0 (arrays only).

    Returns the pairs and a reason for each crop that gave none (low confidence). Raises
    ValueError when the photo cannot give any (too small, aspect mismatch).
    """
    tile = options.tile
    kh, kw = key_photo.shape[:2]
    if kh < tile or kw < tile:
        raise ValueError(f"photo {kw}×{kh} is smaller than one {tile}² tile")
    alignment = align_frame(key_photo, frame, flow)
    out_h = max(TILE_MULTIPLE // 2, round(tile * alignment.scale_y))
    out_w = max(TILE_MULTIPLE // 2, round(tile * alignment.scale_x))
    rng = np.random.default_rng([options.seed, photo_index])
    shift = options.shift
    pairs: list[BuiltPair] = []
    reasons: list[str] = []
    for crop in range(options.crops):
        y, x = int(rng.integers(0, kh - tile + 1)), int(rng.integers(0, kw - tile + 1))
        dy, dx = (int(v) for v in rng.integers(-shift, shift + 1, size=2))
        ry, rx = min(max(y + dy, 0), kh - tile), min(max(x + dx, 0), kw - tile)
        lq, conf = alignment.sample(y, x, tile, out_h, out_w)
        ref_lq, ref_conf = alignment.sample(ry, rx, tile, out_h, out_w)
        confidence = min(conf, ref_conf)
        if confidence < options.min_confidence:
            reasons.append(
                f"crop {crop} at ({y}, {x}): alignment confidence {confidence:.2f} "
                f"< {options.min_confidence}"
            )
            continue
        images = PairImages(
            hq=_float(key_photo[y : y + tile, x : x + tile]),
            lq=lq,
            ref=_float(key_photo[ry : ry + tile, rx : rx + tile]),
            ref_lq=ref_lq,
        )
        pairs.append(
            BuiltPair(images, {"crop": [y, x], "reference_crop": [ry, rx]}, None, confidence)
        )
    return pairs, reasons


__all__ = [
    "Alignment",
    "BuiltPair",
    "LibraryPairOptions",
    "VideoPairOptions",
    "align_frame",
    "library_pairs",
    "video_frame_pair",
    "video_pairs",
]
