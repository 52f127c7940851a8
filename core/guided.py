"""The `guided` restorer: flow-aligned transfer of the reference's detail, on the CPU.

No model weights. The reselected frame is a low-resolution, noisy, compressed view of nearly
the same scene as the high-quality reference, moved a little (hand shake) and with subjects
that may have moved on their own. So:

1. Upscale the frame bicubically to the reference's size: the fallback everywhere.
2. Global flow, frame → reference at video resolution (the reference degraded to video
   resolution, or the real video frame at T0 when we have it), with forward-backward
   consistency and a photometric agreement check giving a first confidence map.
3. Per overlapping tile (bounded memory, cancellable): PCR picks the reference crop, dense
   local flow at full resolution refines the alignment (seeded with the global flow), and the
   reference is warped onto the frame's grid.
4. Trust is re-checked after bringing the warped reference down to the frame's resolution:
   where its structure (a band-pass, normalised by local contrast, so blur, noise and tone
   differences do not count) disagrees with the frame's (a moved subject, an occlusion, a flow
   failure), the confidence drops. Forward-backward inconsistency of the global flow counts
   only on textured areas (on flat ones flow is arbitrary and harmless). The mask is eroded
   and feathered so edges never ghost.
5. Two-band transfer: output = warped reference's band above the video resolution + the
   frame's low band (colour and tone from the frame, smoothed so its noise does not return),
   blended with the bicubic frame by the confidence.

Parameters (request.params override constructor options) are the fields of `GuidedParams`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, get_args, get_type_hints

import cv2
import numpy as np

from core.api import Diagnostics, RestoreError, RestoreRequest, RestoreResult
from core.colorfix import wavelet_color_fix
from core.degrade import LivePhotoDegradation
from core.flow import (
    FlowEstimator,
    forward_backward_confidence,
    inside_mask,
    make_flow_estimator,
    resize_flow,
    warp,
)
from core.images import resize
from core.memory import PeakMemory
from core.registry import register
from core.tiling import Blender, Tile, pcr_crop_origin, tile_grid


@dataclass(slots=True)
class GuidedParams:
    """Tunables of the guided restorer; defaults measured with bench/restore.py."""

    tile: int = 1024
    overlap: int = 96
    flow: str = "dis"
    raft_weights: str | None = None
    raft_variant: str = "large"
    raft_iters: int = 20
    device: str = "cpu"
    global_preset: str = "medium"
    local_preset: str = "fast"
    tone_sigma: float = 6.0
    """σ (reference pixels) of the low band taken from the frame: colour/tone, not noise."""
    agree_floor: float = 0.01
    """Band contrast (RMS, [0, 1] units) too faint for its disagreement to matter."""
    agree_tolerance: float = 0.5
    """Normalised structural disagreement at which trust falls to 1/e (0 agree … 1 unrelated)."""
    fb_sigma: float = 8.0
    """Forward-backward tolerance of the global flow in video pixels: a coarse check for
    occlusions and gross failures (the local flow refines the rest, and the photometric check
    after degrading the warped reference is the fine one)."""
    erode: int = 3
    """Shrink the trusted area by this many reference pixels (keeps halos off moved edges)."""
    feather: float = 4.0
    """σ (reference pixels) of the mask's soft edge, so trusted/untrusted seams do not show."""
    color_fix: bool = False
    seed: int | None = None
    """Accepted for interchangeability with stochastic restorers; guided is deterministic."""

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> GuidedParams:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise RestoreError(f"guided: unknown parameters {', '.join(unknown)}")
        hints = get_type_hints(cls)
        params = cls(**{k: _coerce(k, v, hints[k]) for k, v in values.items()})
        if params.tile < 32 or not 0 <= params.overlap < params.tile // 2:
            raise RestoreError("guided: need tile ≥ 32 and 0 ≤ overlap < tile/2")
        for name, (low, high) in _RANGES.items():
            if not low <= getattr(params, name) <= high:
                raise RestoreError(f"guided: parameter {name} must be within [{low:g}, {high:g}],"
                                   f" got {getattr(params, name)!r}")
        for name, choices in _CHOICES.items():
            if getattr(params, name) not in choices:
                raise RestoreError(f"guided: parameter {name} must be one of"
                                   f" {', '.join(choices)}, got {getattr(params, name)!r}")
        return params


_RANGES: dict[str, tuple[float, float]] = {
    "tile": (32, 16384), "raft_iters": (1, 100), "tone_sigma": (0, 256), "agree_floor": (1e-6, 1),
    "agree_tolerance": (1e-3, 10), "fb_sigma": (1e-3, 1024), "erode": (0, 256), "feather": (0, 256),
}
"""Where each numeric parameter makes sense: a zero tolerance or floor divides by zero, and a σ
of 1e300 asks OpenCV for a kernel no memory holds."""
_CHOICES: dict[str, tuple[str, ...]] = {
    "flow": ("dis", "raft"), "raft_variant": ("large", "small"),
    "global_preset": ("ultrafast", "fast", "medium"),
    "local_preset": ("ultrafast", "fast", "medium"),
}


def param_problems(values: Mapping[str, Any]) -> list[str]:
    """The guided schema as `core.registry.validate_params` asks it: [] or the first problem."""
    try:
        GuidedParams.from_mapping(values)
    except RestoreError as exc:
        return [str(exc)]
    return []


def _coerce(name: str, value: Any, annotation: Any) -> Any:
    """`value` as the field's declared type, or a RestoreError naming the parameter.

    Parameters come from TOML and `--param KEY=VALUE`, so a word where a number belongs must
    be reported as bad input, not surface later as a TypeError deep in the restorer.
    """
    kinds = [k for k in get_args(annotation) if k is not type(None)] or [annotation]
    if value is None and type(None) in get_args(annotation):
        return None
    kind = kinds[0]
    number = isinstance(value, int | float) and not isinstance(value, bool)
    ok = {
        bool: isinstance(value, bool),
        int: number and (isinstance(value, int) or (_finite(value) and value.is_integer())),
        float: number and _finite(value),
        str: isinstance(value, str),
    }.get(kind, True)
    if not ok:
        kind_name = "a finite number" if kind is float else kind.__name__
        raise RestoreError(f"guided: parameter {name} must be {kind_name}, got {value!r}")
    return kind(value)


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond any float (TOML and JSON allow them)
        return False


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0:
        return image
    out = cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    if out.ndim == 2 and image.ndim == 3:
        out = out[:, :, None]
    return out


def _channel_energy(image: np.ndarray) -> np.ndarray:
    """Σ_c image_c² as H×W float32 (much faster than np.sum(axis=2) on interleaved data)."""
    flat = image.reshape(-1, image.shape[2])
    out = np.zeros(flat.shape[0], np.float32)
    for c in range(image.shape[2]):
        out += flat[:, c] * flat[:, c]
    return out.reshape(image.shape[:2])


def structural_disagreement(
    a: np.ndarray, b: np.ndarray, fine: float, coarse: float, floor: float
) -> np.ndarray:
    """How differently a and b are structured locally, in [0, 2]: H×W float32.

    Both images are band-passed between `fine` (about one video pixel: below it the frame
    differs from any reference by blur, noise and codec anyway) and `coarse` (above it, a
    colour or exposure shift is no reason for distrust). The local energy of the difference
    of the bands is divided by the local energy of the bands themselves (plus `floor`, the
    energy of contrast too faint to matter): 0 when the structure matches (even if one is
    blurrier), ≈ 1 when it is unrelated (a subject that moved, an occlusion, a flow failure),
    up to 2 when it is inverted. Normalising makes a high-contrast edge that is merely a little
    softer in the frame count as agreement.
    """
    band_a = _blur(a, fine) - _blur(a, coarse)
    band_b = _blur(b, fine) - _blur(b, coarse)
    mismatch = _blur(_channel_energy(band_a - band_b), coarse)
    signal = _blur(_channel_energy(band_a) + _channel_energy(band_b), coarse)
    return (mismatch / (signal + floor)).astype(np.float32)


def texture_weight(image: np.ndarray, fine: float, coarse: float, floor: float) -> np.ndarray:
    """signal / (signal + floor) of the same band: ≈ 0 on flat areas, → 1 on texture.

    Flow is arbitrary on flat areas (so its forward-backward check fails there) but any
    displacement of a flat area is harmless; this weight lets the check count only where it can
    both be trusted and matter.
    """
    band = _blur(image, fine) - _blur(image, coarse)
    signal = _blur(_channel_energy(band), coarse)
    return (signal / (signal + floor)).astype(np.float32)


def trust_from_disagreement(ratio: np.ndarray, tolerance: float) -> np.ndarray:
    """exp(−(ratio / tolerance)²): 1 where the structure agrees, → 0 where it does not."""
    return np.exp(-np.square(ratio / tolerance)).astype(np.float32)


def working_target(target: np.ndarray, reference_lq: np.ndarray | None) -> np.ndarray:
    """The frame at the resolution its content really has.

    Photos renders a reselected key frame at the still's size (`IMG_E1234.HEIC`), but the
    pixels come from the video: an upscaled render holds no more detail than the video frame.
    Matching and trust work "at video resolution", so when the video frame at T0 tells us what
    that is and the target is larger, the target is brought down to it first.
    """
    if reference_lq is None:
        return target
    lh, lw = reference_lq.shape[:2]
    if target.shape[0] * target.shape[1] <= 1.2 * lh * lw:
        return target
    return resize(target, lh, lw, interpolation="area")


def _roundtrip(image: np.ndarray, scale_h: float, scale_w: float) -> np.ndarray:
    """Down to the frame's resolution and back up: what the frame can still show."""
    h, w = image.shape[:2]
    sh, sw = max(1, round(h * scale_h)), max(1, round(w * scale_w))
    return resize(resize(image, sh, sw, interpolation="area"), h, w, interpolation="bicubic")


@register("guided")
class GuidedRestorer:
    """Reference-guided detail transfer with flow alignment and a no-ghosting trust mask."""

    name = "guided"

    def __init__(self, **options: Any) -> None:
        self.options = dict(options)
        GuidedParams.from_mapping(self.options)  # fail early on bad configuration
        self._flows: dict[tuple[str, str], FlowEstimator] = {}

    def _estimator(self, p: GuidedParams, preset: str) -> FlowEstimator:
        key = (p.flow, preset if p.flow == "dis" else f"{p.raft_weights}:{p.raft_variant}")
        if key not in self._flows:
            try:
                self._flows[key] = make_flow_estimator(
                    p.flow,
                    weights_path=p.raft_weights,
                    variant=p.raft_variant,
                    iters=p.raft_iters,
                    device=p.device,
                    preset=preset,
                )
            except (ValueError, FileNotFoundError, ImportError) as exc:
                raise RestoreError(f"guided: flow estimator unavailable: {exc}") from exc
        return self._flows[key]

    def restore(self, request: RestoreRequest) -> RestoreResult:
        p = GuidedParams.from_mapping({**self.options, **dict(request.params)})
        with PeakMemory() as peak:
            image, diag = self._restore(request, p)
        diag.peak_memory_bytes = peak.peak_bytes
        return RestoreResult(image=image, diagnostics=diag)

    def _restore(self, request: RestoreRequest, p: GuidedParams) -> tuple[np.ndarray, Diagnostics]:
        timings: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[name] = timings.get(name, 0.0) + now - clock
            clock = now

        target, reference = working_target(request.target, request.reference_lq), request.reference
        cancel, progress = request.cancel, request.progress
        h, w = target.shape[:2]
        rh, rw = reference.shape[:2]
        started = clock

        progress(0.0, "upscale")
        upscaled = np.clip(resize(target, rh, rw, interpolation="bicubic"), 0.0, 1.0)
        lap("upscale")
        cancel.raise_if_cancelled()

        # 1. Global flow and confidence at video resolution.
        progress(0.02, "global flow")
        if request.reference_lq is not None:
            reference_lq = resize(request.reference_lq, h, w)
        else:
            reference_lq = LivePhotoDegradation.for_matching((h, w)).apply(reference)
        global_flow = self._estimator(p, p.global_preset)
        fwd = global_flow(target, reference_lq)
        bwd = global_flow(reference_lq, target)
        conf_fb = forward_backward_confidence(fwd, bwd, sigma=p.fb_sigma)
        aligned_lq = warp(reference_lq, fwd)
        ratio = structural_disagreement(target, aligned_lq, 1.0, 4.0, p.agree_floor**2)
        texture = texture_weight(target, 1.0, 4.0, p.agree_floor**2)
        conf_lr = trust_from_disagreement(ratio, p.agree_tolerance) * (
            1.0 - texture * (1.0 - conf_fb)
        )
        flow_up = resize_flow(fwd, rh, rw)
        conf_up = cv2.resize(conf_lr, (rw, rh), interpolation=cv2.INTER_LINEAR)
        del fwd, bwd, aligned_lq, ratio, texture
        lap("global_flow")
        cancel.raise_if_cancelled()

        # 2. Tiles: PCR crop, local flow, warp, trust, two-band transfer.
        scale_h, scale_w = h / rh, w / rw
        local_flow = self._estimator(p, p.local_preset)
        tiles = tile_grid(rh, rw, p.tile, p.overlap)
        blender = Blender(rh, rw, channels=3)
        transfer_sum = 0.0
        valid = conf_up > 0.5
        for i, tile in enumerate(tiles):
            cancel.raise_if_cancelled()
            progress(0.05 + 0.9 * i / len(tiles), f"tile {i + 1}/{len(tiles)}")
            out, mask = self._tile(
                tile, upscaled, reference, flow_up, conf_up, valid, local_flow, p, scale_h, scale_w
            )
            blender.add(tile, out)
            transfer_sum += float(mask.mean()) * tile.h * tile.w
        lap("tiles")
        cancel.raise_if_cancelled()

        progress(0.96, "blend")
        result = blender.result()
        if p.color_fix:
            result = wavelet_color_fix(result, upscaled)
        result = np.clip(result, 0.0, 1.0).astype(np.float32, copy=False)
        lap("blend")
        progress(1.0, "done")
        timings["total"] = time.perf_counter() - started
        covered = float(sum(t.h * t.w for t in tiles))
        diag = Diagnostics(
            timings=timings,
            tiles=len(tiles),
            flow_confidence=float(conf_lr.mean()),
            device="cpu" if p.flow == "dis" else p.device,
            extra={
                "transfer_fraction": transfer_sum / covered,
                "flow": p.flow,
            },
        )
        return result, diag

    def _tile(
        self,
        tile: Tile,
        upscaled: np.ndarray,
        reference: np.ndarray,
        flow_up: np.ndarray,
        conf_up: np.ndarray,
        valid: np.ndarray,
        local_flow: FlowEstimator,
        p: GuidedParams,
        scale_h: float,
        scale_w: float,
    ) -> tuple[np.ndarray, np.ndarray]:
        rh, rw = reference.shape[:2]
        ys, xs = tile.slices
        frame = upscaled[ys, xs]
        cy, cx = pcr_crop_origin(flow_up, tile, valid, None, (rh, rw))
        crop = reference[cy : cy + tile.h, cx : cx + tile.w]
        crop_lq = _roundtrip(crop, scale_h, scale_w)  # as blurry as the frame, for matching
        # The global flow in crop coordinates seeds the local search (DIS); RAFT ignores it.
        init = flow_up[ys, xs].copy()
        init[:, :, 0] += tile.x - cx
        init[:, :, 1] += tile.y - cy
        # (A crop can only differ from the tile in size if the reference were smaller than the
        # tile grid; keep the global flow then.)
        same = crop.shape[:2] == frame.shape[:2]
        flow = local_flow(frame, crop_lq, init) if same else init
        # Sample the whole reference (not just the crop) so flow leaving the crop still works.
        aligned = warp(reference, flow, offset=(cy, cx))
        inside = inside_mask(flow, (rh, rw), offset=(cy, cx)).astype(np.float32)

        # Trust and tone are judged at the frame's own resolution: the frame holds no
        # information above it, and it is 4-5x cheaper than at the reference's.
        lh, lw = max(1, round(tile.h * scale_h)), max(1, round(tile.w * scale_w))
        frame_s = resize(frame, lh, lw, interpolation="area")
        aligned_s = resize(aligned, lh, lw, interpolation="area")
        ratio = structural_disagreement(frame_s, aligned_s, 1.0, 4.0, p.agree_floor**2)
        mask = trust_from_disagreement(ratio, p.agree_tolerance)
        mask = np.minimum(mask, resize(conf_up[ys, xs], lh, lw, interpolation="area"))
        mask = np.minimum(mask, resize(inside, lh, lw, interpolation="area"))
        erode = round(p.erode * scale_h)
        if erode > 0:
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * erode + 1,) * 2)
            mask = cv2.erode(mask, kernel, borderType=cv2.BORDER_REPLICATE)
        mask = np.clip(_blur(mask, p.feather * scale_h), 0.0, 1.0)
        tone_s = _blur(frame_s - aligned_s, p.tone_sigma * scale_h)

        mask_up = resize(mask, tile.h, tile.w, interpolation="bilinear")
        tone = resize(tone_s, tile.h, tile.w, interpolation="bicubic")
        out = frame + mask_up[:, :, None] * (aligned + tone - frame)
        return out.astype(np.float32, copy=False), mask
