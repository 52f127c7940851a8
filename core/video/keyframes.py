"""Keyframes for a clip: brought to the clip's scales once, aligned to every frame, warped.

Why these steps:
- A key photo is several times the video's resolution; every frame needs it at two scales only:
  as the video would show it (for matching and for judging reliability, at the frames' own
  resolution) and at the output's resolution (what detail is taken from). Both are made once
  per clip, from the still's 8-bit pixels a strip at a time (`core.resample.area_downscale`).
- Alignment per frame (`align`): the dense flow from the frame to the keyframe, seeded with the
  chain through the predecessor (frame t → t−1 → keyframe), which keeps it on track as the
  camera drifts away from the keyframe's position; where the chained flow explains the
  keyframe better than the refined one, the chained one is kept, region by region. The
  camera's homography, fitted to that flow and refined on the images
  (`core.motion`), replaces it wherever it follows: dense flow between a noisy
  frame and a clean keyframe is off by tenths of a pixel, the homography by hundredths.
- Reliability per frame: `core.reliability`'s structural agreement between the frame and the
  warped keyframe, at the frame's resolution (the same building block the still restorer uses),
  zero where the flow leaves the keyframe (a region it never saw).
- Warping the keyframe to the output grid is done on a finer grid and averaged down, so the
  detail keeps its sharpness whatever the sub-pixel position (see `warp_supersampled`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from core.api import RestoreError
from core.degrade import LivePhotoDegradation
from core.flow import FlowEstimator, inside_mask, resize_flow, warp
from core.images import resize, to_gray_u8, to_luma
from core.motion import fit_homography, homography_flow, refine_homography
from core.reliability import (
    blur,
    structural_disagreement,
    texture_weight,
    trust_from_disagreement,
)
from core.resample import area_downscale, as_float
from core.video.api import Keyframe
from core.video.motion import warp_cubic
from core.video.params import GuidedVideoParams

ASPECT_SLACK = 0.01
"""Relative aspect-ratio difference below which a keyframe is simply resized to the video's
shape; above it, it is first cropped to the video's aspect (a 16:9 clip of a 4:3 still)."""


@dataclass(slots=True)
class PreparedKeyframe:
    """One keyframe at the scales a clip needs."""

    index: int
    fine: np.ndarray
    """float32 at the output size × `supersample`: what detail is warped from."""
    supersample: int
    matching: np.ndarray
    """float32 at the frames' size, softened as the video path softens: matched against."""
    matching_luma: np.ndarray
    """float luma of `matching`, what reliability compares."""
    smooth_gray: np.ndarray
    """8-bit luma of `matching` softened by `MATCH_SIGMA` (what dense flow reads)."""
    smooth_luma: np.ndarray
    """float luma softened by `HOMOGRAPHY_SIGMA` (what the homography is refined on)."""
    gradient: tuple[np.ndarray, np.ndarray]
    """x and y derivatives of `smooth_luma`."""


def _crop_to_aspect(image: np.ndarray, height: int, width: int) -> np.ndarray:
    h, w = image.shape[:2]
    want = width / height
    have = w / h
    if abs(have / want - 1.0) <= ASPECT_SLACK:
        return image
    if have > want:  # too wide: keep the centre columns
        keep = max(1, round(h * want))
        x0 = (w - keep) // 2
        return image[:, x0 : x0 + keep]
    keep = max(1, round(w / want))
    y0 = (h - keep) // 2
    return image[y0 : y0 + keep]


def _at_size(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """float32 at (height, width): area averaging to shrink (strips of 8-bit rows), bicubic
    to enlarge."""
    h, w = image.shape[:2]
    if height <= h and width <= w:
        return area_downscale(image, height, width)
    return np.clip(resize(as_float(image), height, width, interpolation="bicubic"), 0.0, 1.0)


def max_scale(keyframe: np.ndarray, video_height: int, video_width: int) -> float:
    """The largest output scale the keyframe supports: its own resolution over the video's."""
    cropped = _crop_to_aspect(keyframe, video_height, video_width)
    return max(1.0, min(cropped.shape[0] / video_height, cropped.shape[1] / video_width))


def prepare(
    keyframe: Keyframe,
    video_size: tuple[int, int],
    output_size: tuple[int, int],
    supersample: int,
) -> PreparedKeyframe:
    """Bring `keyframe` to the clip's scales (see the module's docstring)."""
    vh, vw = video_size
    oh, ow = output_size
    image = _crop_to_aspect(keyframe.image, vh, vw)
    h, w = image.shape[:2]
    # Supersampling past the keyframe's own resolution adds nothing but work.
    ss = max(1, min(supersample, int(min(h / oh, w / ow))))
    fine = _at_size(image, oh * ss, ow * ss)
    small = fine if (oh * ss, ow * ss) == (vh, vw) else _at_size(image, vh, vw)
    matching = LivePhotoDegradation.for_matching((vh, vw)).apply(small)
    luma = to_luma(matching)
    smooth = blur(luma, HOMOGRAPHY_SIGMA)
    return PreparedKeyframe(
        index=keyframe.index,
        fine=fine,
        supersample=ss,
        matching=matching,
        matching_luma=luma,
        smooth_gray=to_gray_u8(blur(matching, MATCH_SIGMA)),
        smooth_luma=smooth,
        gradient=(cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=1, scale=0.5),
                  cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=1, scale=0.5)),
    )


def check_keyframes(keyframes: list[Keyframe] | tuple[Keyframe, ...]) -> None:
    """Refuse unusable keyframes with a reason (before any frame is decoded)."""
    if not keyframes:
        raise RestoreError("a clip restoration needs at least one keyframe (the key photo)")
    for number, key in enumerate(keyframes):
        image = np.asarray(key.image)
        if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 16:
            raise RestoreError(
                f"keyframe {number}: expected an H×W×3 image of at least 16×16 pixels,"
                f" got shape {image.shape}"
            )
        if image.dtype != np.uint8 and not np.issubdtype(image.dtype, np.floating):
            raise RestoreError(f"keyframe {number}: unsupported dtype {image.dtype}")
        if isinstance(key.index, bool) or not isinstance(key.index, int | np.integer):
            raise RestoreError(f"keyframe {number}: index must be a frame number")
        if key.index < 0:
            raise RestoreError(f"keyframe {number}: index {key.index} is before the first frame")


@dataclass(slots=True)
class Alignment:
    """A frame's alignment to one keyframe, at the frame's resolution."""

    flow: np.ndarray
    """Frame → keyframe (matching scale)."""
    reliability: np.ndarray
    """Where the warped keyframe shows what the frame shows, in [0, 1] (before temporal
    smoothing, erosion and feathering)."""
    homography: np.ndarray | None
    """The camera's part of the motion (see `core.motion`), None when unfitted."""


@dataclass(slots=True)
class FrameView:
    """What alignment needs of one frame, computed once for all keyframes."""

    luma: np.ndarray
    """float luma of the frame's own (stabilised) content."""
    smooth_gray: np.ndarray
    """8-bit luma softened by `MATCH_SIGMA`, what the flow estimator reads."""
    smooth_luma: np.ndarray
    """float luma softened by `HOMOGRAPHY_SIGMA`, what the homography is refined on."""
    texture: np.ndarray
    """Where the frame has structure flow can follow (`core.reliability.texture_weight`)."""


MATCH_SIGMA = 1.5
"""Both images are softened this much before dense flow: noise and codec blocks bias DIS by
tenths of a pixel, softened images much less (measured on H.264 frames)."""
HOMOGRAPHY_SIGMA = 1.0


def frame_view(image: np.ndarray, agree_floor: float) -> FrameView:
    luma = to_luma(image)
    return FrameView(
        luma=luma,
        smooth_gray=to_gray_u8(blur(image, MATCH_SIGMA)),
        smooth_luma=blur(luma, HOMOGRAPHY_SIGMA),
        texture=texture_weight(luma, 1.0, 4.0, agree_floor**2),
    )


def _residual(view: FrameView, key: PreparedKeyframe, flow: np.ndarray) -> np.ndarray:
    """Local photometric misfit of a flow (cheap: luma, one warp, one blur)."""
    return blur(np.abs(view.luma - warp(key.matching_luma, flow)), 2.0)


def prefer_local(misfit_camera: np.ndarray, misfit_local: np.ndarray, margin: float,
                 grow: int = 2) -> np.ndarray:
    """Where the dense flow replaces the camera's homography, in [0, 1].

    The homography is preferred everywhere it is not clearly worse: on flat or soft areas
    dense flow is arbitrary by pixels, and a keyframe's fine detail pasted pixels off doubles
    the error instead of removing it. The dense flow takes over, over a ramp as wide as
    `margin`, where its structural disagreement is lower by more than `margin` (a subject that
    moved on its own, parallax), grown by `grow` pixels so the subject's own edge moves with
    it, and softened.
    """
    gain = np.clip((misfit_camera - misfit_local - margin) / margin, 0.0, 1.0)
    if grow > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1,) * 2)
        gain = cv2.dilate(gain.astype(np.float32), kernel)
    return np.clip(blur(gain.astype(np.float32), grow / 2.0), 0.0, 1.0)


def align(
    view: FrameView,
    key: PreparedKeyframe,
    chained: np.ndarray | None,
    previous_homography: np.ndarray | None,
    estimator: FlowEstimator,
    p: GuidedVideoParams,
) -> Alignment:
    """Flow from the frame to `key`, and its reliability.

    1. Dense flow, seeded with `chained` (the frame's flow to the keyframe through its
       predecessor; None for the first frame or without chaining); where the chained flow
       fits the keyframe better (lower local photometric misfit) it is kept instead.
    2. The camera's homography, fitted to that flow and refined on the images
       (`core.motion`), is used everywhere the dense flow does not explain the
       keyframe clearly better (`prefer_local`): far more precise, and right on flat areas
       where dense flow is arbitrary; the dense flow stays on a subject or parallax.
    3. Reliability: structural agreement of the frame with the keyframe warped by the final
       flow, zero where the flow leaves the keyframe.
    """
    h, w = view.luma.shape
    local = estimator(view.smooth_gray, key.smooth_gray, chained)
    if chained is not None:
        better = (_residual(view, key, chained) < _residual(view, key, local)).astype(np.float32)
        better = blur(better, 2.0)[:, :, None]
        local = local + better * (chained - local)
    flow = local
    matrix = None
    ratio = None
    if p.homography:
        start = fit_homography(local, view.texture, step=8, threshold=1.0, min_weight=0.3,
                               min_points=16)
        if start is None:
            start = previous_homography
        if start is not None:
            first = homography_flow(start, (h, w))
            usable = (np.hypot(*np.moveaxis(local - first, 2, 0)) < 1.0) & (view.texture > 0.3)
            matrix = refine_homography(view.smooth_luma, key.smooth_luma, key.gradient, start,
                                       usable)
            camera = homography_flow(matrix, (h, w))
            floor = p.agree_floor**2
            misfit_camera = structural_disagreement(
                view.luma, warp(key.matching_luma, camera), 1.0, 4.0, floor)
            misfit_local = structural_disagreement(
                view.luma, warp(key.matching_luma, local), 1.0, 4.0, floor)
            dense = prefer_local(misfit_camera, misfit_local, p.local_margin)
            flow = camera + dense[:, :, None] * (local - camera)
            # The misfit of the blend, from the two already measured (the blend is one or the
            # other except on the soft seams between them).
            ratio = misfit_camera + dense * (misfit_local - misfit_camera)
    if ratio is None:
        ratio = structural_disagreement(
            view.luma, warp(key.matching_luma, flow), 1.0, 4.0, p.agree_floor**2)
    reliability = trust_from_disagreement(ratio, p.agree_tolerance)
    reliability *= inside_mask(flow, key.matching.shape[:2]).astype(np.float32)
    return Alignment(flow=flow.astype(np.float32, copy=False), reliability=reliability,
                     homography=matrix)


def shape_mask(reliability: np.ndarray, erode: int, feather: float) -> np.ndarray:
    """Erode then feather a reliability map (as the still restorer does): edges never ghost,
    seams never show."""
    mask = reliability
    if erode > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * erode + 1,) * 2)
        mask = cv2.erode(mask, kernel, borderType=cv2.BORDER_REPLICATE)
    return np.clip(blur(mask, feather), 0.0, 1.0).astype(np.float32)


def warp_supersampled(
    key: PreparedKeyframe, flow: np.ndarray, output_size: tuple[int, int]
) -> np.ndarray:
    """The keyframe's detail on the output grid, following `flow` (frames' scale).

    The flow is brought to the fine grid (`supersample` × the output), the keyframe sampled
    there bicubically and the result averaged down to the output: each output pixel is the
    mean of ss² samples, so the sharpness no longer depends on where a sample falls between
    keyframe pixels (a plain warp at the output's size blurs more at half-pixel positions,
    which shows as flicker when the position drifts from frame to frame).
    """
    oh, ow = output_size
    fh, fw = key.fine.shape[:2]
    vh, vw = key.matching.shape[:2]
    fine_flow = resize_flow(flow, fh, fw) if (fh, fw) != (vh, vw) else flow
    # `resize_flow` scales the vectors from the frames' grid to the fine grid; the keyframe at
    # that scale is `key.fine`, so the samples land on its pixels.
    sampled = warp_cubic(key.fine, fine_flow)
    if (fh, fw) == (oh, ow):
        return np.clip(sampled, 0.0, 1.0)
    return np.clip(cv2.resize(sampled, (ow, oh), interpolation=cv2.INTER_AREA), 0.0, 1.0)
