"""`livemoments-video`: the diffusion path for clips, for GPU boxes with the LiveMoments weights.

Every frame is restored by the `livemoments` still restorer (`core.livemoments.restorer`: the
key photo as reference, the six-step bridge sampler, tiled inference, weights from a checkpoint
directory, `-p checkpoint=DIR`), and neighbouring frames are kept consistent during the six
steps by MGLD-VSR's motion-guided latent guidance (`core.video.latent_guide` through the
pipeline's per-step hook; the math in `core.livemoments.video_guidance`). Restored on its own,
each frame gets its own small hallucinations and they flicker; the guidance pulls each tile's
predicted clean latent towards the previous frame's final latent warped along the motion,
where the motion holds. `guidance_strength` (default 0.2, `core.video.livemoments_params`)
says how strongly; 0 gives the per-frame still restoration bit for bit.

What each frame is given, and why:
* the reference is the key photo cropped to the video's aspect and brought to the output's size
  (the video's, times `scale`, at most the key photo's): the still pipeline restores to its
  reference's size, and a 12 MP restoration per frame would be neither asked for nor affordable;
* no low-quality rendition of the reference: the still uses the video frame at the key photo's
  time, but frames stream in order and that frame may come after the ones that need it, so
  the downscaled reference stands in for every frame alike (the pipeline's own fallback);
* the same seed for every frame (0 unless `seed` is given): each tile starts from the same
  noise in every frame, so the noise itself does not flicker;
* with two keyframes (the key photo and a restored reselected still), the one nearer in time.

Streaming: frames are read one at a time; memory holds the models, one frame's restoration,
the previous frame and one latent per tile (see `LatentGuide`), whatever the clip's length.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from core.api import RestoreError, RestoreRequest
from core.images import resize, validate_image
from core.video.api import ClipDiagnostics, ClipRequest, Keyframe
from core.video.guided_video import output_size
from core.video.keyframes import _crop_to_aspect, check_keyframes, max_scale
from core.video.livemoments_params import (
    CONSTRUCTOR_OPTIONS,
    NAME,
    guidance_strength,
    param_problems,
    still_params,
)
from core.video.registry import register_clip

NEIGHBOUR_PRESET = "fast"
"""DIS preset of the flow between neighbouring frames (guided-video's default for the same
flows): the guidance works on the latent grid, 8 px per cell, so a finer flow buys nothing."""


def keyframe_reference(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The key photo as the still pipeline's reference for a frame restored to `size`: cropped
    to the video's aspect (centred, as guided-video does) and resized (area to shrink, bicubic
    to enlarge), float32 in [0, 1]."""
    height, width = size
    cropped = _crop_to_aspect(np.asarray(image), height, width)
    return np.clip(resize(validate_image(cropped, "keyframe"), height, width), 0.0, 1.0)


def _to_u8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def _nearest(keyframes: list[Keyframe], index: int) -> int:
    return min(range(len(keyframes)), key=lambda k: abs(keyframes[k].index - index))


@register_clip(NAME)
class LiveMomentsVideoRestorer:
    """Per-frame `livemoments` restoration with motion-guided latent guidance between frames.

    Constructor options: the still restorer's (`device`, `dtype`, `low_memory`, `compile`) and
    defaults for any parameter of `core.video.livemoments_params` (e.g. `checkpoint`). The
    models are loaded on the first frame and kept for later clips (`unload()` frees them).

    `still`, when given, is the `livemoments` restorer the frames run on instead of one built
    here: a process that also restores stills (the daemon's worker) hands over the instance it
    holds for them, so the SD3 models are in memory once, not twice. Its owner decides its
    device and memory options and when its models go, so the still restorer's constructor
    options are refused beside it, and `unload()` leaves it alone.
    """

    name = NAME

    def __init__(self, still: Any = None, **options: Any) -> None:
        self.constructor = {k: v for k, v in options.items() if k in CONSTRUCTOR_OPTIONS}
        self.defaults = {k: v for k, v in options.items() if k not in CONSTRUCTOR_OPTIONS}
        if still is not None and self.constructor:
            raise RestoreError(
                f"{NAME}: {', '.join(sorted(self.constructor))} belong to the given still "
                "restorer; give either the still restorer or its options"
            )
        problems = param_problems(self.defaults)
        if problems:  # fail early on bad configuration
            raise RestoreError("; ".join(problems))
        self.diagnostics = ClipDiagnostics()
        self.guide: Any = None
        self._still: Any = still
        self._owns_still = still is None

    def unload(self) -> None:
        """Free the models of a still restorer built here (a given one is its owner's)."""
        if self._owns_still and self._still is not None:
            self._still.unload()

    def restore_clip(self, request: ClipRequest) -> Iterator[np.ndarray]:
        """Check the request now; the returned iterator restores frame by frame."""
        params = {**self.defaults, **dict(request.params)}
        problems = param_problems(params)
        if problems:
            raise RestoreError("; ".join(problems))
        if not params.get("checkpoint"):
            raise RestoreError(
                f"{NAME} needs the LiveMoments weights: -p checkpoint=DIR "
                "(`lmd model check DIR` validates a directory)"
            )
        check_keyframes(list(request.keyframes))
        scale = request.scale
        if isinstance(scale, bool) or not isinstance(scale, int | float) or not scale >= 1.0:
            raise RestoreError(f"{NAME}: scale must be a number ≥ 1, got {scale!r}")
        self.diagnostics = ClipDiagnostics()
        return self._run(request, params)

    def _still_restorer(self) -> Any:
        if self._still is None:
            from core.livemoments.restorer import LiveMomentsRestorer

            self._still = LiveMomentsRestorer(**self.constructor)
        return self._still

    def _run(self, request: ClipRequest, params: Mapping[str, Any]) -> Iterator[np.ndarray]:
        from core.flow import make_flow_estimator
        from core.video.latent_guide import LatentGuide

        diag = self.diagnostics
        still = self._still_restorer()
        per_frame = still_params(params)
        strength = guidance_strength(params)
        keyframes = list(request.keyframes)
        references: list[np.ndarray] = []
        video_size = out_size = (0, 0)
        progress = _ClipProgress(request)
        diag.extra.update(guidance_strength=strength, latent_warping_error=[],
                          neighbour_confidence=[])
        for index, raw in enumerate(request.frames):
            request.cancel.raise_if_cancelled()
            frame = validate_image(raw, f"frame {index}")
            if index == 0:
                video_size = frame.shape[:2]
                out_size = self._size(keyframes, video_size, float(request.scale))
                references = [keyframe_reference(k.image, out_size) for k in keyframes]
                diag.output_size = out_size
                self.guide = LatentGuide(
                    strength,
                    make_flow_estimator("dis", preset=NEIGHBOUR_PRESET),
                    tile=int(per_frame.get("tile", still.defaults["tile"])),
                )
            elif frame.shape[:2] != video_size:
                raise RestoreError(
                    f"frame {index} is {frame.shape[1]}×{frame.shape[0]}, the clip's frames are"
                    f" {video_size[1]}×{video_size[0]}"
                )
            started = time.perf_counter()
            confidence = self.guide.begin_frame(frame, out_size)
            diag.timings["motion"] = diag.timings.get("motion", 0.0) + (
                time.perf_counter() - started
            )
            result = still.restore(
                RestoreRequest(
                    target=frame,
                    reference=references[_nearest(keyframes, index)],
                    restorer="livemoments",
                    params=per_frame,
                    progress=progress.for_frame(index),
                    cancel=request.cancel,
                ),
                on_step_end=self.guide.hook,
            )
            diag.extra["latent_warping_error"].append(self.guide.end_frame())
            diag.extra["neighbour_confidence"].append(confidence)
            for key, seconds in result.diagnostics.timings.items():
                if key != "total":  # the stages add up to it; callers sum the timings
                    diag.timings[key] = diag.timings.get(key, 0.0) + seconds
            extra = result.diagnostics.extra
            diag.extra.update(weights_digest=extra.get("weights_digest"),
                              random_weights=extra.get("random_weights"),
                              device=result.diagnostics.device)
            diag.frames += 1
            yield _to_u8(result.image)
        request.progress(1.0, "done")

    @staticmethod
    def _size(
        keyframes: list[Keyframe], video_size: tuple[int, int], scale: float
    ) -> tuple[int, int]:
        limit = min(max_scale(np.asarray(k.image), *video_size) for k in keyframes)
        if scale > limit + 1e-6:
            raise RestoreError(
                f"{NAME}: scale {scale:g} is beyond the keyframe's resolution"
                f" (at most {limit:.2f} for {video_size[1]}×{video_size[0]} frames)"
            )
        return output_size(video_size, scale)


class _ClipProgress:
    """The still restorer's progress within each frame as the clip's, never going back (the
    still's own fractions may repeat a value with a different rounding between tiles)."""

    def __init__(self, request: ClipRequest) -> None:
        self.request = request
        self.total = request.frame_count
        self.last = 0.0

    def for_frame(self, index: int) -> Any:
        def report(fraction: float, stage: str) -> None:
            if self.total:
                self.last = max(self.last, min(1.0, (index + fraction) / self.total))
                self.request.progress(self.last, f"frame {index + 1}/{self.total}: {stage}")
            else:
                self.request.progress(0.0, f"frame {index + 1}: {stage}")

        return report
