"""`guided-video`: a Live Photo's clip restored with its key photo as keyframe, on the CPU.

No model weights. The clip is the same low-quality stream a reselected still comes from, and the
key photo is a high-quality view of one of its moments, so every frame can borrow the key
photo's detail wherever it shows the same thing. Per frame, at the frames' own resolution
unless said otherwise:

1. Motion to the predecessor (`core.video.motion`): neighbour flows both ways and where
   carrying the predecessor is safe (not occluded or revealed, content unchanged).
2. The frame's own content, stabilised: the frame averaged recursively with its warped
   predecessor where that is safe, so noise and codec flicker do not jump from frame to frame.
3. Alignment to each keyframe (`core.video.keyframes`): the direct flow seeded with the chain
   through the predecessor, the chained flow kept where it explains the keyframe better, the
   camera's homography (fitted and refined to hundredths of a pixel) wherever the flow
   follows it, and a per-region reliability (structural agreement; zero outside the
   keyframe), carried along the motion from the predecessor's so the choice between keyframe
   and own content does not flicker.
4. Transfer at the output's resolution: the keyframe warped (supersampled) plus the frame's
   own low band (colour and exposure, from the stabilised content), blended with the frame's
   own content by the eroded, feathered reliability: where the keyframe does not apply (a
   subject that moved, a region it never saw) the output fades to the frame's own content, so
   the keyframe never appears as a ghost.
5. The output is averaged with the warped previous output where the motion is safe and the two
   agree, which removes the remaining frame-to-frame flicker without dragging moved detail.
6. Faces keep their identity: with `lmd[faces]` installed, the still restorers' face guard
   (`core.faces`) compares every face of the frame with the restored frame, and inside a face
   that drifted the frame's own content is used (about 0.14 CPU s per 1280×960 frame).

With two keyframes (the key photo at T0 and a restored reselected still at T1), each region
takes the reliable ones, the nearer in time weighing more. Memory: a few frames at the output's
resolution plus each keyframe at the output size × `supersample` (float32), whatever the
clip's length.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from core.api import RestoreError
from core.flow import FlowEstimator, make_flow_estimator, resize_flow
from core.images import resize, to_gray_u8, validate_image
from core.reliability import blur
from core.video.api import ClipDiagnostics, ClipRequest
from core.video.keyframes import (
    PreparedKeyframe,
    align,
    check_keyframes,
    frame_view,
    max_scale,
    prepare,
    shape_mask,
    warp_supersampled,
)
from core.video.motion import (
    NeighbourMotion,
    agreement,
    carry,
    compose,
    neighbour_motion,
    warp_cubic,
)
from core.video.params import GuidedVideoParams
from core.video.registry import register_clip

KEY_DISTANCE_FRAMES = 15.0
"""With several keyframes, a keyframe this many frames away weighs half as much as one at the
frame itself where both are reliable (it never lowers how much the keyframes are used)."""


@dataclass(slots=True)
class _Previous:
    """What frame t keeps for frame t+1."""

    frame: np.ndarray
    gray: np.ndarray
    own: np.ndarray
    output: np.ndarray
    flows: list[np.ndarray]
    reliability: list[np.ndarray]
    homographies: list[np.ndarray | None]


def output_size(video_size: tuple[int, int], scale: float) -> tuple[int, int]:
    """The output's (height, width) for `scale`: even numbers (4:2:0 video needs them)."""
    vh, vw = video_size
    return max(2, 2 * round(vh * scale / 2)), max(2, 2 * round(vw * scale / 2))


def _to_u8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


@register_clip("guided-video")
class GuidedVideoRestorer:
    """Keyframe-guided, temporally stable clip restoration (see the module's docstring)."""

    name = "guided-video"

    def __init__(self, **options: object) -> None:
        self.options = dict(options)
        GuidedVideoParams.from_mapping(self.options)  # fail early on bad configuration
        self.diagnostics = ClipDiagnostics()
        self._faces = False

    def restore_clip(self, request: ClipRequest) -> Iterator[np.ndarray]:
        """Check the request now; the returned iterator restores frame by frame."""
        params = GuidedVideoParams.from_mapping({**self.options, **dict(request.params)})
        check_keyframes(list(request.keyframes))
        scale = request.scale
        if isinstance(scale, bool) or not isinstance(scale, int | float) or not scale >= 1.0:
            raise RestoreError(f"guided-video: scale must be a number ≥ 1, got {scale!r}")
        self.diagnostics = ClipDiagnostics()
        return self._run(request, params)

    def _run(self, request: ClipRequest, p: GuidedVideoParams) -> Iterator[np.ndarray]:
        diag = self.diagnostics
        key_flow = make_flow_estimator("dis", preset=p.key_preset)
        near_flow = make_flow_estimator("dis", preset=p.neighbour_preset)
        keys: list[PreparedKeyframe] = []
        prev: _Previous | None = None
        self._faces = False
        if p.face_check:
            from core.faces import availability

            self._faces, why = availability()
            diag.extra["face_check"] = "on" if self._faces else f"not available: {why}"
        video_size = out_size = (0, 0)
        total = request.frame_count
        started = time.perf_counter()
        for index, raw in enumerate(request.frames):
            request.cancel.raise_if_cancelled()
            frame = validate_image(raw, f"frame {index}")
            if index == 0:
                video_size = frame.shape[:2]
                out_size = self._sizes(request, video_size)
                keys = [prepare(k, video_size, out_size, p.supersample) for k in request.keyframes]
                diag.output_size = out_size
                self._lap("keyframes", started)
            elif frame.shape[:2] != video_size:
                raise RestoreError(
                    f"frame {index} is {frame.shape[1]}×{frame.shape[0]}, the clip's frames are"
                    f" {video_size[1]}×{video_size[0]}"
                )
            stage = f"frame {index + 1}/{total}" if total else f"frame {index + 1}"
            request.progress(index / total if total else 0.0, stage)
            output, prev = self._frame(index, frame, prev, keys, out_size, key_flow, near_flow, p)
            diag.frames += 1
            yield _to_u8(output)
        request.progress(1.0, "done")

    def _sizes(self, request: ClipRequest, video_size: tuple[int, int]) -> tuple[int, int]:
        limit = min(max_scale(np.asarray(k.image), *video_size) for k in request.keyframes)
        if request.scale > limit + 1e-6:
            raise RestoreError(
                f"guided-video: scale {request.scale:g} is beyond the keyframe's resolution"
                f" (at most {limit:.2f} for {video_size[1]}×{video_size[0]} frames)"
            )
        return output_size(video_size, request.scale)

    def _lap(self, name: str, since: float) -> float:
        now = time.perf_counter()
        timings = self.diagnostics.timings
        timings[name] = timings.get(name, 0.0) + now - since
        return now

    def _frame(
        self,
        index: int,
        frame: np.ndarray,
        prev: _Previous | None,
        keys: list[PreparedKeyframe],
        out_size: tuple[int, int],
        key_flow: FlowEstimator,
        near_flow: FlowEstimator,
        p: GuidedVideoParams,
    ) -> tuple[np.ndarray, _Previous]:
        clock = time.perf_counter()
        gray = to_gray_u8(frame)
        motion: NeighbourMotion | None = None
        own = frame
        if prev is not None:
            motion = neighbour_motion(
                frame, prev.frame, gray, prev.gray, near_flow, p.occlusion_sigma,
                p.change_tolerance,
            )
            own = carry(frame, warp_cubic(prev.own, motion.to_prev),
                        p.temporal_denoise * motion.valid)
        clock = self._lap("motion", clock)

        view = frame_view(own, p.agree_floor)
        flows: list[np.ndarray] = []
        homographies: list[np.ndarray | None] = []
        raw_reliability: list[np.ndarray] = []
        candidates: list[np.ndarray] = []
        masks: list[np.ndarray] = []
        nearness: list[float] = []
        for k, key in enumerate(keys):
            chained = None
            if prev is not None and motion is not None and p.chain:
                chained = compose(motion.to_prev, prev.flows[k])
            aligned = align(view, key, chained, prev.homographies[k] if prev else None,
                            key_flow, p)
            reliability = aligned.reliability
            if prev is not None and motion is not None:
                carried = warp_cubic(prev.reliability[k], motion.to_prev)
                reliability = carry(reliability, np.clip(carried, 0.0, 1.0),
                                    p.temporal_trust * motion.valid)
            flows.append(aligned.flow)
            homographies.append(aligned.homography)
            raw_reliability.append(reliability)
            clock = self._lap("align", clock)

            detail = warp_supersampled(key, aligned.flow, out_size)
            detail_small = detail if detail.shape[:2] == own.shape[:2] else resize(
                detail, *own.shape[:2], interpolation="area")
            tone = blur(own - detail_small, p.tone_sigma)
            if tone.shape[:2] != out_size:
                tone = resize(tone, *out_size, interpolation="bicubic")
            candidates.append(detail + tone)
            nearness.append(1.0 / (1.0 + abs(index - key.index) / KEY_DISTANCE_FRAMES))
            masks.append(shape_mask(reliability, p.erode, p.feather))
            clock = self._lap("transfer", clock)

        output, coverage = self._blend(own, candidates, masks, nearness, out_size)
        if prev is not None and motion is not None:
            to_prev = motion.to_prev
            valid = motion.valid
            if out_size != own.shape[:2]:
                to_prev = resize_flow(to_prev, *out_size)
                valid = resize(valid, *out_size, interpolation="bilinear")
            previous = warp_cubic(prev.output, to_prev)
            gate = agreement(output, previous, p.change_tolerance)
            output = carry(output, previous, p.temporal_output * valid * gate)
        output = np.clip(output, 0.0, 1.0)
        clock = self._lap("stabilise", clock)
        if self._faces:
            output = self._guard_faces(index, frame, own, output)
            self._lap("faces", clock)
        self.diagnostics.reference_fraction.append(float(coverage.mean()))
        kept = _Previous(frame=frame, gray=gray, own=own, output=output, flows=flows,
                         reliability=raw_reliability, homographies=homographies)
        return output, kept

    def _guard_faces(
        self, index: int, frame: np.ndarray, own: np.ndarray, output: np.ndarray
    ) -> np.ndarray:
        """The face-identity guard of stills (`core.faces`), per frame: inside a face whose
        identity drifted from the frame's, the frame's own content is used instead."""
        from core.faces import check_identity, fall_back_inside_faces

        check = check_identity(frame, output)
        if not check.drifted:
            return output
        self.diagnostics.extra.setdefault("face_drift_frames", []).append(index)
        base = own if own.shape[:2] == output.shape[:2] else np.clip(
            resize(own, *output.shape[:2], interpolation="bicubic"), 0.0, 1.0)
        return np.clip(fall_back_inside_faces(output, base, check), 0.0, 1.0)

    @staticmethod
    def _blend(
        own: np.ndarray,
        candidates: list[np.ndarray],
        masks: list[np.ndarray],
        nearness: list[float],
        out_size: tuple[int, int],
    ) -> tuple[np.ndarray, np.ndarray]:
        """Keyframe candidates where reliable, the frame's own content elsewhere.

        How much of a pixel comes from the keyframes is their combined reliability,
        1 − Π(1 − mask); between several keyframes it is shared by reliability times nearness
        in time (nearness never lowers the total: one keyframe far away, where it applies, is
        used fully). The rest is the frame's own content, upscaled bicubically when the output
        is larger. Returns the blend and the combined reliability (frame scale).
        """
        base = own if own.shape[:2] == out_size else np.clip(
            resize(own, *out_size, interpolation="bicubic"), 0.0, 1.0)
        missing = np.ones(own.shape[:2], np.float32)
        for mask in masks:
            missing *= 1.0 - mask
        coverage = 1.0 - missing
        weights = [mask * near for mask, near in zip(masks, nearness, strict=True)]
        total = np.maximum(sum(weights), 1e-6)
        shares = [coverage * w / total for w in weights]
        if out_size != own.shape[:2]:
            shares = [resize(w, *out_size, interpolation="bilinear") for w in shares]
            kept = resize(missing, *out_size, interpolation="bilinear")
        else:
            kept = missing
        mixed = base * kept[:, :, None]
        for candidate, share in zip(candidates, shares, strict=True):
            mixed += candidate * share[:, :, None]
        return mixed.astype(np.float32, copy=False), coverage
