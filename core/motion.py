"""Camera motion between a frame and its reference: one homography, to a hundredth of a pixel.

Why: a dense flow is only as good as the texture under it. On flat or soft areas (a wall, a
sky, a blurry photo) DIS's answer is arbitrary by several pixels, and between a noisy,
compressed video frame and a clean reference it is biased by a few tenths of a pixel even on
texture (0.2-0.5 px on H.264 frames). That is harmless at the frame's scale but fatal when the
reference's fine detail is pasted at full resolution: misplaced, it doubles the error instead
of removing it, and in a clip it jitters from frame to frame. Hand shake between a key photo
and a frame is, for the static scene, a rotation of the camera: a homography, known everywhere
once fitted, and fitted over tens of thousands of pixels far more precise than any single flow
vector. So: a robust fit to the reliable flow (`fit_homography`) gives the start, and
Gauss-Newton on the images themselves (`refine_homography`: forward-additive Lucas-Kanade with
a gain and an offset for exposure, Tukey weights so a moving subject does not pull) refines it
(0.008 px where tracking corners reached 0.027 px). The dense flow is kept only where it
explains the frame clearly better (a subject that moved on its own, parallax): `prefer_dense`;
`still_share` says how far flat areas may trust the model. One home for the still restorer
(`core.alignment`) and the clip restorer (`core.video.keyframes`).

Conventions as in `core.flow`: flows are H×W×2 (dx, dy) from the frame's grid to the
reference's; a homography maps frame pixel (x, y, 1) to the reference position, both at the
frame's scale.
"""

from __future__ import annotations

import cv2
import numpy as np

MIN_POINTS = 64
"""Fewest reliable flow vectors a homography is fitted to (else: no camera model)."""
GRID_STEP = 6
"""Spacing in pixels of the refinement's candidate points (one per cell, the strongest
gradient)."""
REFINE_SIGMA = 1.0
"""σ (frame pixels) that softens both lumas before the camera model is refined on them: noise
then matters less."""
MAX_POINTS = 20_000
ITERATIONS = 8
TUKEY_C = 4.685
"""Tukey's constant for 95 % efficiency, in units of the residuals' robust σ."""


def fit_homography(
    flow: np.ndarray,
    weight: np.ndarray,
    *,
    step: int = 6,
    threshold: float = 0.75,
    min_weight: float = 0.5,
    min_points: int = MIN_POINTS,
) -> np.ndarray | None:
    """The homography (3×3 float64) that the flow follows where `weight` > `min_weight`, or None.

    Vectors are sampled every `step` pixels where the weight says they can be trusted (texture,
    forward-backward consistency) and fitted robustly (MAGSAC++; `threshold` in pixels), so a
    subject that moved on its own is an outlier, not a bias. None when fewer than `min_points`
    vectors are usable or the fit keeps fewer than `min_points` inliers.
    """
    h, w = flow.shape[:2]
    ys, xs = np.mgrid[step // 2 : h : step, step // 2 : w : step]
    usable = weight[ys, xs] > min_weight
    if int(usable.sum()) < min_points:
        return None
    src = np.stack([xs[usable], ys[usable]], axis=-1).astype(np.float32)
    dst = src + flow[ys[usable], xs[usable]]
    homography, inliers = cv2.findHomography(
        src, dst, cv2.USAC_MAGSAC, threshold, maxIters=2000, confidence=0.999
    )
    if homography is None or inliers is None or int(inliers.sum()) < min_points:
        return None
    return homography


def luma_gradient(luma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x and y derivatives (central differences) of a float luma image, for `refine_homography`."""
    return (
        cv2.Sobel(luma, cv2.CV_32F, 1, 0, ksize=1, scale=0.5),
        cv2.Sobel(luma, cv2.CV_32F, 0, 1, ksize=1, scale=0.5),
    )


def _points(gradient: np.ndarray, usable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One point per GRID_STEP cell: the usable pixel with the strongest gradient there."""
    h, w = gradient.shape
    ch, cw = h // GRID_STEP, w // GRID_STEP
    score = np.where(usable, gradient, -1.0)[: ch * GRID_STEP, : cw * GRID_STEP]
    cells = score.reshape(ch, GRID_STEP, cw, GRID_STEP).transpose(0, 2, 1, 3).reshape(ch, cw, -1)
    best = cells.argmax(axis=2)
    good = np.take_along_axis(cells, best[:, :, None], axis=2)[:, :, 0] > 0
    cy, cx = np.nonzero(good)
    by, bx = np.divmod(best[cy, cx], GRID_STEP)
    ys, xs = cy * GRID_STEP + by, cx * GRID_STEP + bx
    if ys.size > MAX_POINTS:
        order = np.argsort(-gradient[ys, xs])[:MAX_POINTS]
        ys, xs = ys[order], xs[order]
    return xs.astype(np.float32), ys.astype(np.float32)


def refine_homography(
    frame_luma: np.ndarray,
    key_luma: np.ndarray,
    key_grad: tuple[np.ndarray, np.ndarray],
    start: np.ndarray,
    usable: np.ndarray,
) -> np.ndarray:
    """Gauss-Newton refinement of `start` so that key(H·x) ≈ gain·frame(x) + offset.

    `frame_luma`/`key_luma` are float luma at the frames' scale, already smoothed a little (the
    caller's choice: noise then matters less); `key_grad` the keyframe's x/y gradients;
    `usable` (bool H×W) where points may be taken (textured, following the start closely).
    Returns `start` unchanged when there are too few points or the system is degenerate.
    """
    gy, gx = np.gradient(frame_luma)
    magnitude = np.hypot(gx, gy)
    xs, ys = _points(magnitude, usable)
    if xs.size < 64:
        return start
    target = frame_luma[ys.astype(np.int64), xs.astype(np.int64)].astype(np.float64)
    matrix = start.astype(np.float64) / start[2, 2]
    gain, offset = 1.0, 0.0
    kx, ky = key_grad
    for _ in range(ITERATIONS):
        z = matrix[2, 0] * xs + matrix[2, 1] * ys + 1.0
        u = (matrix[0, 0] * xs + matrix[0, 1] * ys + matrix[0, 2]) / z
        v = (matrix[1, 0] * xs + matrix[1, 1] * ys + matrix[1, 2]) / z
        at = (u.astype(np.float32)[:, None], v.astype(np.float32)[:, None])
        sampled = cv2.remap(key_luma, *at, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        sx = cv2.remap(kx, *at, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        sy = cv2.remap(ky, *at, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        sampled, sx, sy = (a[:, 0].astype(np.float64) for a in (sampled, sx, sy))
        residual = sampled - (gain * target + offset)
        # d(u, v)/d(h00..h21): the projective Jacobian, chained with the key's gradient.
        jx = np.stack([xs, ys, np.ones_like(xs), 0 * xs, 0 * xs, 0 * xs,
                       -u * xs, -u * ys], axis=1) / z[:, None]
        jy = np.stack([0 * xs, 0 * xs, 0 * xs, xs, ys, np.ones_like(xs),
                       -v * xs, -v * ys], axis=1) / z[:, None]
        jac = np.concatenate(
            [sx[:, None] * jx + sy[:, None] * jy, -target[:, None], -np.ones((xs.size, 1))],
            axis=1,
        )
        sigma = 1.4826 * float(np.median(np.abs(residual))) + 1e-6
        r = residual / (TUKEY_C * sigma)
        weight = np.where(np.abs(r) < 1.0, (1.0 - r * r) ** 2, 0.0)
        jw = jac * weight[:, None]
        normal = jw.T @ jac
        try:
            step = np.linalg.solve(normal + 1e-9 * np.eye(10), -(jw.T @ residual))
        except np.linalg.LinAlgError:
            return start
        if not np.all(np.isfinite(step)):
            return start
        matrix = matrix + np.append(step[:8], 0.0).reshape(3, 3)
        gain, offset = gain + step[8], offset + step[9]
        if np.abs(step[[2, 5]]).max() < 1e-3 and np.abs(step[[0, 1, 3, 4]]).max() < 1e-6:
            break
    if not np.all(np.isfinite(matrix)) or abs(np.linalg.det(matrix[:2, :2])) < 1e-3:
        return start
    return matrix


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
