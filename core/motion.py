"""Camera motion between a frame and its reference: a homography fitted to a dense flow.

Why: a dense flow is only as good as the texture under it. On flat or soft areas (a wall, a
sky, a blurry photo) DIS's answer is arbitrary by several pixels, harmless at the frame's
scale but fatal when the reference's fine detail (grain, fine texture) is pasted at full
resolution: misplaced, that detail doubles the error instead of removing it. Hand shake
between a Live Photo's key photo and a reselected frame is, for the static scene, a rotation
of the camera: a homography, known everywhere once it is fitted where the flow is reliable.
So the static scene is aligned by the homography (sub-pixel everywhere, flat areas included)
and the dense flow is kept only where it explains the frame clearly better (a subject that
moved on its own, parallax): `prefer_dense`.

Conventions as in `core.flow`: flows are H×W×2 (dx, dy) from the frame's grid to the
reference's; a homography maps frame pixel (x, y, 1) to the reference position, both at the
frame's scale.
"""

from __future__ import annotations

import cv2
import numpy as np

MIN_POINTS = 64
"""Fewest reliable flow vectors a homography is fitted to (else: no camera model)."""


def fit_homography(
    flow: np.ndarray, weight: np.ndarray, *, step: int = 6, threshold: float = 0.75
) -> np.ndarray | None:
    """The homography (3×3 float64) that the flow follows where `weight` > 0.5, or None.

    Vectors are sampled every `step` pixels where the weight says they can be trusted (texture,
    forward-backward consistency) and fitted robustly (MAGSAC++; `threshold` in pixels), so a
    subject that moved on its own is an outlier, not a bias. None when fewer than MIN_POINTS
    vectors are usable or the fit keeps fewer than MIN_POINTS inliers.
    """
    h, w = flow.shape[:2]
    ys, xs = np.mgrid[step // 2 : h : step, step // 2 : w : step]
    usable = weight[ys, xs] > 0.5
    if int(usable.sum()) < MIN_POINTS:
        return None
    src = np.stack([xs[usable], ys[usable]], axis=-1).astype(np.float32)
    dst = src + flow[ys[usable], xs[usable]]
    homography, inliers = cv2.findHomography(
        src, dst, cv2.USAC_MAGSAC, threshold, maxIters=2000, confidence=0.999
    )
    if homography is None or inliers is None or int(inliers.sum()) < MIN_POINTS:
        return None
    return homography


def refine_homography(
    frame: np.ndarray, reference: np.ndarray, homography: np.ndarray, mask: np.ndarray
) -> np.ndarray:
    """`homography` made sub-pixel: corners of the frame tracked into the reference.

    A homography fitted to DIS vectors is off by a few tenths of a pixel (DIS is coarse on
    soft or dark images); Lucas-Kanade on up to 3000 corners (inside `mask`, where the dense
    flow agrees with the first fit, so moved subjects stay out), started where the first fit
    puts them, then MAGSAC++ and a least-squares fit to its inliers, lands within ~0.05 px on
    the bench's pairs, in a fraction of a second. The first fit is kept when too few corners
    track.
    """
    from core.images import to_gray_u8

    gray_frame, gray_ref = to_gray_u8(frame), to_gray_u8(reference)
    corners = cv2.goodFeaturesToTrack(
        gray_frame, 3000, 0.01, 8, mask=mask.astype(np.uint8), blockSize=5
    )
    if corners is None or len(corners) < MIN_POINTS:
        return homography
    src = corners.reshape(-1, 2).astype(np.float32)
    guess = cv2.perspectiveTransform(src[None], homography)[0].astype(np.float32)
    dst, status, _ = cv2.calcOpticalFlowPyrLK(
        gray_frame,
        gray_ref,
        src,
        guess,
        winSize=(21, 21),
        maxLevel=2,
        criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01),
        flags=cv2.OPTFLOW_USE_INITIAL_FLOW,
    )
    tracked = status.reshape(-1) == 1
    if int(tracked.sum()) < MIN_POINTS:
        return homography
    fitted, inliers = cv2.findHomography(src[tracked], dst[tracked], cv2.USAC_MAGSAC, 0.5)
    if fitted is None or inliers is None or int(inliers.sum()) < MIN_POINTS:
        return homography
    keep = inliers.reshape(-1) == 1
    refined, _ = cv2.findHomography(src[tracked][keep], dst[tracked][keep], 0)
    return refined if refined is not None else fitted


def homography_flow(
    homography: np.ndarray,
    shape: tuple[int, int],
    *,
    origin: tuple[int, int] = (0, 0),
    scale: tuple[float, float] = (1.0, 1.0),
) -> np.ndarray:
    """The flow a homography induces on a grid: H×W×2 float32 for a window of `shape`.

    The homography lives at the frame's scale; the grid may be another one (the reference's
    full resolution): `scale` = (frame / grid) per axis (sy, sx), and `origin` = (y, x) of the
    window in grid pixels. Pixel centres map as p = (P + ½)·s − ½, so the flow is (H(p) − p)/s
    exactly, with no upsampling of a coarse field.
    """
    sy, sx = scale
    # float32 is ample: coordinates below 10^4 are exact to ~10^-3 px.
    px = ((np.arange(origin[1], origin[1] + shape[1], dtype=np.float32) + 0.5) * sx - 0.5)[None]
    py = ((np.arange(origin[0], origin[0] + shape[0], dtype=np.float32) + 0.5) * sy - 0.5)[:, None]
    m = homography.astype(np.float32)
    den = m[2, 0] * px + m[2, 1] * py + m[2, 2]
    out = np.empty((*shape, 2), np.float32)
    out[:, :, 0] = ((m[0, 0] * px + m[0, 1] * py + m[0, 2]) / den - px) / sx
    out[:, :, 1] = ((m[1, 0] * px + m[1, 1] * py + m[1, 2]) / den - py) / sy
    return out


def prefer_dense(
    disagreement_model: np.ndarray,
    disagreement_dense: np.ndarray,
    *,
    fail: float = 0.25,
    margin: float = 0.1,
    width: float = 0.1,
    grow: int = 2,
) -> np.ndarray:
    """Where the dense flow should replace the camera model: H×W float32 in [0, 1].

    Inputs are how badly each warped reference disagrees with the frame (e.g.
    `core.reliability.structural_disagreement`). The model is preferred (it is smooth and
    sub-pixel even where the frame is flat); the dense flow takes over, smoothly over `width`,
    only where the model fails (disagrees by more than `fail`: on grain and noise both warps
    disagree a little, and there the dense flow is the arbitrary one) and the dense flow
    disagrees less by more than `margin`. The area it takes is grown by `grow` pixels so a
    moved subject's own edge is aligned with it, not with the background.
    """
    gain = (
        np.minimum(disagreement_model - fail, disagreement_model - disagreement_dense - margin)
        / width
    )
    choice = np.clip(gain, 0.0, 1.0).astype(np.float32)
    if grow > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1,) * 2)
        choice = cv2.dilate(choice, kernel)
    return cv2.GaussianBlur(choice, (0, 0), max(grow, 1) / 2.0)


def still_share(
    disagreement_model: np.ndarray,
    texture: np.ndarray,
    *,
    fail: float = 0.25,
    sigma: float = 12.0,
    support: float = 0.15,
) -> np.ndarray:
    """How surely the camera model holds around each pixel: H×W float32 in [0, 1].

    Only where the frame has texture (`texture` > 0.5) can it tell whether the model
    explains it (the model's warped reference agrees with the frame within `fail`) or not
    (something moved on its own). Flat areas cannot tell: a flat part of a moving subject
    looks like flat background, and the reference's fine detail (grain) would be pasted at the
    background's position. So flat areas borrow the verdict of their textured neighbourhood
    (normalised convolution, Gaussian σ = `sigma`): the share of "still" votes, scaled down
    where less than `support` of the neighbourhood votes at all. (The dense flow itself is no
    witness: on flat areas it is arbitrary, along an edge it slides freely.)
    """
    sure = (texture > 0.5).astype(np.float32)
    still = sure * (disagreement_model <= fail)
    num = cv2.GaussianBlur(still.astype(np.float32), (0, 0), sigma)
    den = cv2.GaussianBlur(sure, (0, 0), sigma)
    return np.clip(num / np.maximum(den, support), 0.0, 1.0)
