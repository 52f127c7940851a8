"""The `guided` restorer: flow-aligned transfer of the reference's detail, on the CPU.

No model weights. The reselected frame is a low-resolution, noisy, compressed view of nearly
the same scene as the high-quality reference, moved a little (hand shake) and with subjects
that may have moved on their own. So:

1. The frame, upscaled bicubically to the reference's size, is the fallback everywhere.
2. At the frame's scale (`core.alignment.align`): a dense flow to the reference (degraded to
   the frame's size, or the real video frame at T0 when we have it), a camera model (a
   homography fitted to the reliable flow, made sub-pixel on tracked corners) that aligns the
   static scene everywhere, flat areas included, the dense flow where it explains the frame
   better (a moved subject), and a confidence map.
3. Per overlapping tile, in row order (memory bounded: full resolution exists one tile at a
   time, an 8-bit reference is read window by window and finished rows leave at once): PCR
   picks the reference crop, the alignment is brought to full resolution (the camera model
   exactly, the dense flow refined by a local flow where it is used) and the reference is
   warped onto the frame's grid (bicubic).
4. Per-region reliability at the frame's scale (`core.reliability.transfer_weight`): the
   warped reference, brought down to the frame's resolution, must agree with the frame in
   structure (a band-pass normalised by local contrast: blur, noise and tone do not count) and
   in plain residual (a wrong shape next to a strong edge; along a motion boundary, where the
   flow is a blend of two motions, no residual is forgiven), within the alignment's confidence
   and where the reference was reached (flat areas only where the reference has detail to
   give); the weight is eroded and feathered so it fades to the frame's own content, without
   a seam and without a ghost along a moved subject's border.
5. Two-band transfer: output = warped reference + the frame's tone (its colour and exposure
   relative to the softened reference, smoothed so its noise does not return), blended with the
   bicubic frame by the weight.

Parameters (request.params override constructor options) are the fields of `GuidedParams`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, get_type_hints

import cv2
import numpy as np

from core.alignment import Alignment, align
from core.api import Diagnostics, RestoreError, RestoreRequest, RestoreResult
from core.colorfix import wavelet_color_fix
from core.degrade import LivePhotoDegradation
from core.flow import FlowEstimator, inside_mask, make_flow_estimator, warp_window
from core.images import finish_pixels, resize
from core.memory import PeakMemory
from core.params import coerce
from core.registry import register
from core.reliability import blur, channel_energy, texture_weight, transfer_weight
from core.resample import area_downscale, as_float, resize_window
from core.tiling import StreamingBlender, Tile, pcr_offset, place_crop, tile_grid

MATCH_SOFTNESS = 0.7
"""σ (frame pixels) that softens a downscaled reference like a video frame (optics, scaler
and codec): `core.degrade.LivePhotoDegradation`'s default blur."""


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
    erode: int = 8
    """Shrink the trusted area by this many reference pixels (keeps halos off moved edges):
    twice the feather, so the soft edge of the mask stays inside the area it trusts."""
    feather: float = 4.0
    """σ (reference pixels) of the mask's soft edge, so trusted/untrusted seams do not show."""
    color_fix: bool = False
    """Wavelet colour fix of each tile against the bicubic frame (see `core.colorfix`)."""
    camera_model: bool = True
    """Align the static scene with a homography fitted to the reliable flow (`core.motion`):
    sub-pixel even on flat areas, where a dense flow is arbitrary; the dense flow stays where
    it explains the frame better (a moved subject, parallax)."""
    residual_factor: float = 6.0
    """Distrust where the tone-corrected warped reference differs from the frame (at the
    frame's scale) by more than this many times the typical residual of the tile's trusted
    areas (noise, codec); 0 switches the check off."""
    boundary_radius: int = 3
    """Video pixels around each pixel within which a spread of the alignment's flow marks a
    motion boundary (`core.reliability.flow_coherence`): there the reference is a smear of two
    motions, and the residual check forgives nothing on strong edges; 0 switches it off."""
    boundary_tolerance: float = 1.0
    """Spread of the flow (video pixels) within `boundary_radius` at which a motion boundary
    is taken as sure (coherence 1/e): a camera's motion spreads by hundredths of a pixel there,
    and a misplacement of one video pixel is what the frame itself can show."""
    detail_floor: float = 1.0
    """Grey levels (RMS, of 255) of detail above the frame's resolution that the warped
    reference must hold for a flat area to take it: where it holds none, transferring only
    risks a misplaced grain, so flat areas keep the frame's own content; 0 switches it off."""
    local_share: float = 0.02
    """Refine with local flow at full resolution only tiles where the dense flow covers more
    than this share (the rest is aligned by the camera model, which needs no refinement)."""
    frame_pixels: int = 4_000_000
    """Largest frame worked on whole: a larger target with no video frame at T0 is brought down
    to this many pixels first (Live Photo videos have at most 2.8 MP; a larger frame is a render
    at the still's size, and whole-image work must stay at a video's scale)."""
    seed: int | None = None
    """Accepted for interchangeability with stochastic restorers; guided is deterministic."""

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> GuidedParams:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise RestoreError(f"guided: unknown parameters {', '.join(unknown)}")
        hints = get_type_hints(cls)
        params = cls(**{k: coerce("guided", k, v, hints[k]) for k, v in values.items()})
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
    "frame_pixels": (1024, 50_000_000), "local_share": (0, 1), "detail_floor": (0, 255),
    "residual_factor": (0, 1000), "boundary_radius": (0, 64), "boundary_tolerance": (1e-3, 1024),
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


def working_target(
    target: np.ndarray, reference_lq: np.ndarray | None, max_pixels: int
) -> np.ndarray:
    """The frame (float32) at the resolution its content really has, at most `max_pixels`.

    Photos renders a reselected key frame at the still's size (`IMG_E1234.HEIC`), but the
    pixels come from the video: an upscaled render holds no more detail than the video frame.
    Matching and trust work "at video resolution", so when the video frame at T0 tells us what
    that is and the target is larger, the target is brought down to it first. Without it, a
    target above `max_pixels` (Live Photo videos are at most 1920×1440, 2.8 MP) is brought down
    to that many pixels: whole-image work stays at a video's scale, never the still's.
    """
    h, w = target.shape[:2]
    if reference_lq is not None:
        lh, lw = reference_lq.shape[:2]
        if h * w > 1.2 * lh * lw:
            return area_downscale(target, lh, lw)
    if h * w > max_pixels:
        shrink = math.sqrt(max_pixels / (h * w))
        return area_downscale(target, max(1, int(h * shrink)), max(1, int(w * shrink)))
    return as_float(target)


def _roundtrip(image: np.ndarray, scale_h: float, scale_w: float) -> np.ndarray:
    """Down to the frame's resolution and back up: what the frame can still show."""
    h, w = image.shape[:2]
    sh, sw = max(1, round(h * scale_h)), max(1, round(w * scale_w))
    return resize(resize(image, sh, sw, interpolation="area"), h, w, interpolation="bicubic")


@register("guided")
class GuidedRestorer:
    """Reference-guided detail transfer with flow alignment and a no-ghosting trust mask.

    Streams: an 8-bit reference is read tile by tile and the result is returned in 8 bits
    (`keeps_uint8`); whole-image arrays exist only at the frame's scale.
    """

    name = "guided"
    keeps_uint8 = True

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

    def _global(
        self, request: RestoreRequest, p: GuidedParams
    ) -> tuple[np.ndarray, Alignment]:
        """The frame at its working size and its alignment to the reference, frame scale."""
        frame = working_target(request.target, request.reference_lq, p.frame_pixels)
        h, w = frame.shape[:2]
        if request.reference_lq is not None:
            reference_lq = resize(as_float(request.reference_lq), h, w)
        else:
            reference = request.reference
            small = (  # as `resize` would: area to shrink, bicubic (a tiny reference) to enlarge
                area_downscale(reference, h, w)
                if h * w < reference.shape[0] * reference.shape[1]
                else resize(as_float(reference), h, w, interpolation="bicubic")
            )
            reference_lq = LivePhotoDegradation.for_matching((h, w)).apply(small)
        alignment = align(
            frame,
            reference_lq,
            self._estimator(p, p.global_preset),
            fb_sigma=p.fb_sigma,
            agree_floor=p.agree_floor,
            agree_tolerance=p.agree_tolerance,
            camera_model=p.camera_model,
            boundary_radius=p.boundary_radius,
            boundary_tolerance=p.boundary_tolerance,
        )
        return frame, alignment

    def _restore(self, request: RestoreRequest, p: GuidedParams) -> tuple[np.ndarray, Diagnostics]:
        timings: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[name] = timings.get(name, 0.0) + now - clock
            clock = now

        reference = request.reference
        cancel, progress = request.cancel, request.progress
        rh, rw = reference.shape[:2]
        started = clock

        progress(0.0, "global flow")
        frame, alignment = self._global(request, p)
        lap("global_flow")
        cancel.raise_if_cancelled()

        # Tiles in row order: PCR crop, local flow, warp, trust, two-band transfer; finished
        # rows leave the blender as soon as no later tile can touch them.
        local_flow = self._estimator(p, p.local_preset)
        tiles = tile_grid(rh, rw, p.tile, p.overlap)
        out_dtype = np.dtype(np.uint8 if reference.dtype == np.uint8 else np.float32)
        blender = StreamingBlender(
            np.empty((rh, rw, 3), out_dtype),
            tiles[0].h,
            finish=lambda rows: finish_pixels(rows, out_dtype),
        )
        transfer_sum = 0.0
        for i, tile in enumerate(tiles):
            cancel.raise_if_cancelled()
            progress(0.05 + 0.9 * i / len(tiles), f"tile {i + 1}/{len(tiles)}")
            out, mask = self._tile(tile, frame, alignment, reference, local_flow, p)
            blender.add(tile, out)
            transfer_sum += float(mask.mean()) * tile.h * tile.w
        lap("tiles")
        cancel.raise_if_cancelled()

        progress(0.96, "blend")
        result = blender.result()
        lap("blend")
        progress(1.0, "done")
        timings["total"] = time.perf_counter() - started
        covered = float(sum(t.h * t.w for t in tiles))
        diag = Diagnostics(
            timings=timings,
            tiles=len(tiles),
            flow_confidence=float(alignment.confidence.mean()),
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
        frame_small: np.ndarray,
        alignment: Alignment,
        reference: np.ndarray,
        local_flow: FlowEstimator,
        p: GuidedParams,
    ) -> tuple[np.ndarray, np.ndarray]:
        rh, rw = reference.shape[:2]
        h, w = frame_small.shape[:2]
        scale_h, scale_w = h / rh, w / rw
        ys, xs = tile.slices
        # The frame and its alignment at full resolution, for this tile only.
        frame = np.clip(resize_window(frame_small, rh, rw, ys, xs, "bicubic"), 0.0, 1.0)
        flow, dense = alignment.flow_window(rh, rw, ys, xs)
        conf_up = resize_window(alignment.confidence, rh, rw, ys, xs, "bilinear")
        here = Tile(0, 0, tile.h, tile.w)
        cy, cx = place_crop(tile, pcr_offset(flow, here, conf_up > 0.5), (rh, rw))
        # The flow in crop coordinates; where the dense flow is used, a local search at full
        # resolution (DIS, seeded with it; RAFT ignores the seed) refines it. (A crop can only
        # differ from the tile in size if the reference were smaller than the tile grid.)
        flow[:, :, 0] += tile.x - cx
        flow[:, :, 1] += tile.y - cy
        crop = reference[cy : cy + tile.h, cx : cx + tile.w]
        if crop.shape[:2] == frame.shape[:2] and float(dense.mean()) > p.local_share:
            crop_lq = _roundtrip(as_float(crop), scale_h, scale_w)  # as blurry as the frame
            flow += dense[:, :, None] * (local_flow(frame, crop_lq, flow) - flow)
            del crop_lq
        del crop
        # Sample around the crop (not just in it) so flow leaving the crop still works; a tile
        # beyond that is not this tile's content.
        bounds = (cy - p.tile, cy + tile.h + p.tile, cx - p.tile, cx + tile.w + p.tile)
        aligned, reached = warp_window(
            reference, flow, offset=(cy, cx), bounds=bounds, interpolation=cv2.INTER_CUBIC
        )
        inside = (inside_mask(flow, (rh, rw), offset=(cy, cx)) & reached).astype(np.float32)

        # Trust and tone are judged at the frame's own resolution: the frame holds no
        # information above it, and it is 4-5x cheaper than at the reference's.
        lh, lw = max(1, round(tile.h * scale_h)), max(1, round(tile.w * scale_w))
        prior = np.minimum(
            resize(conf_up, lh, lw, interpolation="area"),
            resize(inside, lh, lw, interpolation="area"),
        )
        frame_s = resize(frame, lh, lw, interpolation="area")
        coherence = resize(
            resize_window(alignment.coherence, rh, rw, ys, xs, "bilinear"), lh, lw,
            interpolation="area",
        )
        aligned_s = resize(aligned, lh, lw, interpolation="area")
        if p.detail_floor > 0:
            # What the reference has to give above the frame's resolution, where it is flat.
            above = aligned - resize(aligned_s, tile.h, tile.w, interpolation="bicubic")
            energy = blur(resize(channel_energy(above), lh, lw, interpolation="area"), 1.5)
            gives = energy / (energy + (p.detail_floor / 255.0) ** 2)
            flat = 1.0 - texture_weight(frame_s, 1.0, 4.0, p.agree_floor**2)
            prior = prior * (1.0 - flat * (1.0 - gives))
        mask, tone_s = transfer_weight(
            frame_s,
            aligned_s,
            prior,
            floor=p.agree_floor**2,
            tolerance=p.agree_tolerance,
            residual_factor=p.residual_factor,
            erode=round(p.erode * scale_h),
            feather=p.feather * scale_h,
            tone_sigma=p.tone_sigma * scale_h,
            softness=MATCH_SOFTNESS,
            coherence=coherence,
        )
        mask_up = resize(mask, tile.h, tile.w, interpolation="bilinear")
        tone = resize(tone_s, tile.h, tile.w, interpolation="bicubic")
        out = frame + mask_up[:, :, None] * (aligned + tone - frame)
        if p.color_fix:
            out = wavelet_color_fix(out, frame)
        return out.astype(np.float32, copy=False), mask
