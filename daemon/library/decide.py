"""The reselection decision of the formats page (section 5), for one grouped Live Photo.

T0 comes from the original video's still-image-time (Motion Photos: the presentation
timestamp, else the frame just before half the duration). T1 comes, by reliability, from the
AAE `LivePhotoKeyFrame`, the edited MOV's still-image-time, or frame matching of the edited
still against the decoded, downscaled video. Reselected means |T1 - T0| > half a frame *and*
the edited still matches frame(T1) better than the original still does. AAE edits other than
the key frame make the asset not restorable, with that reason.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from daemon.library import matching, media
from daemon.library.aae import AaeInfo
from daemon.library.quicktime import MovInfo

MATCH_WIDTH = 64
CLEAR_MARGIN = 0.8  # a matched frame must be 20 % closer than frame(T0) to move T1
DEFAULT_FRAME = 1 / 30
# Adjustments that do not change the rendered still's pixels relative to the chosen frame.
HARMLESS = frozenset(
    {"LivePhotoKeyFrame", "Trim", "Mute", "HighResolutionFusion", "VideoPosterFrame", "SlomoRate"}
)
# Adjustments that turn the photo into another product: named in the reason first.
PRODUCT_CHANGES = ("AutoLoop", "LongExposure", "PortraitEffect", "DepthEffect")


@dataclass(frozen=True, slots=True)
class Decision:
    """The rules' outcome for one asset. `target` is the edited still to restore from; None
    when there is none and the video frame at `t1` is the target."""

    t0: float | None
    t1: float | None
    reselected: bool
    reason: str | None
    target: Path | None


@dataclass(frozen=True, slots=True)
class VideoRef:
    """A video, possibly embedded in a still at `offset`/`length`."""

    path: Path
    offset: int | None = None
    length: int | None = None


def blocking_edits(aae: AaeInfo | None) -> tuple[str, ...]:
    if aae is None:
        return ()
    return tuple(a for a in aae.active_adjustments if a not in HARMLESS)


def edit_reason(edits: Sequence[str]) -> str | None:
    if not edits:
        return None
    first = sorted(edits, key=lambda e: (e not in PRODUCT_CHANGES, e))
    return "edited beyond the key frame: " + ", ".join(first)


class _Frames:
    """Decoded small frames of a video, loaded on first use."""

    def __init__(self, video: VideoRef) -> None:
        self.video = video
        self._frames: list[tuple[float, object]] | None = None

    def get(self) -> list[tuple[float, object]]:
        if self._frames is None:
            self._frames = media.small_frames(  # type: ignore[assignment]
                self.video.path, MATCH_WIDTH, offset=self.video.offset, length=self.video.length
            )
        assert self._frames is not None
        return self._frames


def _match(still: Path, frames: list, t0: float) -> tuple[float, float, float]:
    """(best time, best distance, distance at T0) of `still` against the frames."""
    small = media.load_still_small(still, MATCH_WIDTH)
    times = [t for t, _ in frames]
    dists = matching.distances(small, [f for _, f in frames])
    best = min(range(len(dists)), key=dists.__getitem__)
    at_t0 = dists[matching.nearest_index(times, t0)]
    return times[best], dists[best], at_t0


def decide(
    *,
    reference: Path,
    video: VideoRef,
    t0: float | None,
    frame_duration: float | None,
    edited_still: Path | None,
    aae: AaeInfo | None = None,
    edited_mov: MovInfo | None = None,
) -> Decision:
    """Apply the rules to one asset; reads (and decodes) only what the rules need."""
    reason = edit_reason(blocking_edits(aae))
    if t0 is None:
        return Decision(None, None, False, reason or "no key-frame time in the video", None)
    half = 0.5 * (frame_duration or DEFAULT_FRAME)
    frames = _Frames(video)
    t1: float | None = None
    if aae is not None and aae.keyframe_time is not None:
        t1 = aae.keyframe_time
    elif edited_mov is not None and edited_mov.still_image_time is not None:
        t1 = edited_mov.still_image_time
    elif edited_still is not None:
        best_t, best_d, at_t0 = _match(edited_still, frames.get(), t0)
        moved_clearly = abs(best_t - t0) > half and best_d < CLEAR_MARGIN * at_t0
        t1 = best_t if moved_clearly else t0
    if t1 is None:
        return Decision(t0, t0, False, reason, None)
    if not math.isfinite(t1):
        return Decision(t0, None, False, "key-frame time is not finite", None)
    moved = abs(t1 - t0) > half
    if not moved:
        return Decision(t0, t1, False, reason, edited_still)
    if edited_still is not None:
        got = frames.get()
        idx = matching.nearest_index([t for t, _ in got], t1)
        frame_t1 = got[idx][1]
        d_edit = matching.distance(media.load_still_small(edited_still, MATCH_WIDTH), frame_t1)
        d_orig = matching.distance(media.load_still_small(reference, MATCH_WIDTH), frame_t1)
        if not d_edit < d_orig:
            return Decision(
                t0,
                t1,
                False,
                reason or "edited still does not show the reselected frame",
                edited_still,
            )
    return Decision(t0, t1, True, reason, edited_still)


def motion_t0(presentation_us: int | None, mov: MovInfo) -> float | None:
    """Motion Photo T0: the stated timestamp, else the frame just before half the duration."""
    if presentation_us is not None:
        return presentation_us / 1e6
    if not mov.duration or not mov.frame_duration:
        return None
    n = math.floor((mov.duration / 2) / mov.frame_duration)
    t = n * mov.frame_duration
    if math.isclose(t, mov.duration / 2):
        t -= mov.frame_duration
    return max(0.0, t)
