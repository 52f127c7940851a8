"""The camera's part of a frame's motion to the keyframe: one homography, to a hundredth of a
pixel.

Why: dense flow between a noisy, compressed video frame and a clean keyframe is biased by a
few tenths of a pixel (measured with DIS on H.264 frames: 0.2-0.5 px where phase correlation
finds none), and a few tenths of a pixel of misplaced detail cost several dB and jitter from
frame to frame. Most of a hand-held clip's motion is the camera's, which one homography
describes for a distant scene; fitted over tens of thousands of pixels it is far more precise
than any single flow vector. So: a robust fit to the dense flow (RANSAC) gives the start, and
Gauss-Newton on the images themselves (forward-additive Lucas-Kanade with a gain and an offset
for exposure, Tukey weights so a moving subject does not pull) refines it. The dense flow is
still used wherever the scene does not follow the homography (a subject, parallax): see
`core.video.keyframes.align`.

Coordinates: a homography maps frame pixel (x, y) to keyframe pixel coordinates, both at the
frames' scale, as the flows in `core.flow` do.
"""

from __future__ import annotations

import cv2
import numpy as np

from core.flow import identity_grid

GRID_STEP = 6
"""Spacing in pixels of the candidate points (one per cell, the strongest gradient)."""
MAX_POINTS = 20_000
ITERATIONS = 8
TUKEY_C = 4.685
"""Tukey's constant for 95 % efficiency, in units of the residuals' robust σ."""


def homography_flow(matrix: np.ndarray, height: int, width: int) -> np.ndarray:
    """The dense flow (H×W×2 float32) a homography gives on a frame's grid."""
    gx, gy = identity_grid(height, width)
    x = matrix[0, 0] * gx + matrix[0, 1] * gy + matrix[0, 2]
    y = matrix[1, 0] * gx + matrix[1, 1] * gy + matrix[1, 2]
    z = matrix[2, 0] * gx + matrix[2, 1] * gy + matrix[2, 2]
    return np.stack([x / z - gx, y / z - gy], axis=2).astype(np.float32)


def fit_to_flow(flow: np.ndarray, weight: np.ndarray, step: int = 8) -> np.ndarray | None:
    """A homography fitted to `flow` by RANSAC (1 px), sampled on a grid where `weight` > 0.3
    (textured pixels, where flow means something); None when too few points agree."""
    h, w = flow.shape[:2]
    ys, xs = np.mgrid[step // 2 : h : step, step // 2 : w : step]
    keep = weight[ys, xs] > 0.3
    if int(keep.sum()) < 16:
        return None
    src = np.stack([xs[keep], ys[keep]], axis=1).astype(np.float32)
    dst = src + flow[ys[keep], xs[keep]]
    matrix, inliers = cv2.findHomography(src, dst, cv2.RANSAC, 1.0)
    if matrix is None or inliers is None or int(inliers.sum()) < 16:
        return None
    return matrix


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


def refine(
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
