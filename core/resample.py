"""Resizing a window of an image, or a whole image a few rows at a time, as `cv2.resize` would.

Why: a 108 MP reference is 1.3 GB as float32, so restorers keep it in 8 bits and look at full
resolution one tile at a time. Their whole-image steps still need "the bicubic upscale of the
frame" or "the reference brought down to the frame's size"; these functions give exactly that
(the same taps and weights as OpenCV's, so the same numbers up to float32 rounding) for one
window, or for the whole image from a few rows at a time, without ever holding the whole
image in float32.

- `resize_window(image, out_h, out_w, ys, xs, kind)`: rows `ys` and columns `xs` of
  `cv2.resize(image, (out_w, out_h), kind)`, reading only the source pixels they need;
- `area_downscale(image, out_h, out_w)`: `cv2.resize(..., INTER_AREA)` of an image that is
  larger than the output, from row strips converted to float32 one at a time.

8-bit input is read as float32 / 255, as `core.images.validate_image` does.
"""

from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np

STRIP_ROWS = 256
"""Source rows converted to float32 at a time by `area_downscale` (12000 px wide: 37 MB)."""


def as_float(pixels: np.ndarray) -> np.ndarray:
    """A float32 copy of `pixels` ([0, 1]); 8-bit values are divided by 255."""
    if pixels.dtype == np.uint8:
        return pixels.astype(np.float32) / 255.0
    return np.array(pixels, dtype=np.float32)


def _cubic_coeffs(x: np.ndarray) -> np.ndarray:
    """OpenCV's `interpolateCubic` (A = −0.75) in float32, for fractions x: N → N×4."""
    a = np.float32(-0.75)
    one = np.float32(1.0)
    x1 = x + one
    c0 = ((a * x1 - np.float32(5.0) * a) * x1 + np.float32(8.0) * a) * x1 - np.float32(4.0) * a
    c1 = ((a + np.float32(2.0)) * x - (a + np.float32(3.0))) * x * x + one
    r = one - x
    c2 = ((a + np.float32(2.0)) * r - (a + np.float32(3.0))) * r * r + one
    c3 = one - c0 - c1 - c2
    return np.stack([c0, c1, c2, c3], axis=1).astype(np.float32)


def _lanczos_coeffs(x: np.ndarray) -> np.ndarray:
    """OpenCV's `interpolateLanczos4` (8 taps, normalised in float32), for fractions x: N → N×8."""
    s45 = 0.70710678118654752440084436210485
    cs = ((1, 0), (-s45, -s45), (0, 1), (s45, -s45), (-1, 0), (s45, s45), (0, -1), (-s45, s45))
    exact = x < np.finfo(np.float32).eps  # on a source pixel: that pixel alone
    xd = np.where(exact, 0.5, x).astype(np.float64)
    y0 = -(xd + 3) * math.pi * 0.25
    s0, c0 = np.sin(y0), np.cos(y0)
    coeffs = np.empty((x.size, 8), np.float32)
    for i, (a, b) in enumerate(cs):
        y = -(xd + 3 - i) * math.pi * 0.25
        coeffs[:, i] = ((a * s0 + b * c0) / (y * y)).astype(np.float32)
    total = np.zeros(x.size, np.float32)
    for i in range(8):
        total += coeffs[:, i]
    coeffs *= (np.float32(1.0) / total)[:, None]
    coeffs[exact] = 0.0
    coeffs[exact, 3] = 1.0
    return coeffs


@lru_cache(maxsize=64)
def taps(src: int, dst: int, kind: str, axis: str) -> tuple[np.ndarray, np.ndarray]:
    """(source indices dst×k, weights dst×k float32) of `cv2.resize` along one axis.

    Mirrors OpenCV's `resize` set-up: source coordinate (d + 0.5)·scale − 0.5 rounded to
    float32, indices clamped to the image (replicated border). `axis` matters for "bilinear"
    only: OpenCV pins the horizontal fraction to 0 past the first/last pixel but not the
    vertical one. Cached: a restorer asks for the same axes for every tile.
    """
    if src < 1 or dst < 1:
        raise ValueError(f"empty axis {src} -> {dst}")
    scale = 1.0 / (dst / src)
    f = (np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5
    start = np.floor(f).astype(np.int64)
    frac = (f - start).astype(np.float32)
    if kind == "bilinear":
        if axis == "x":
            low, high = start < 0, start >= src - 1
            frac[low | high] = 0.0
            start = np.where(low, 0, np.where(high, src - 1, start))
        index = start[:, None] + np.arange(2)[None, :]
        weight = np.stack([np.float32(1.0) - frac, frac], axis=1).astype(np.float32)
    elif kind == "bicubic":
        index = start[:, None] + np.arange(-1, 3)[None, :]
        weight = _cubic_coeffs(frac)
    elif kind == "lanczos":
        index = start[:, None] + np.arange(-3, 5)[None, :]
        weight = _lanczos_coeffs(frac)
    else:
        raise ValueError(f"unsupported interpolation {kind!r}; bilinear, bicubic or lanczos")
    index = np.clip(index, 0, src - 1)
    index.flags.writeable = weight.flags.writeable = False
    return index, weight


_CV_KINDS = {
    "bilinear": cv2.INTER_LINEAR,
    "bicubic": cv2.INTER_CUBIC,
    "lanczos": cv2.INTER_LANCZOS4,
}
_MAX_PERIOD = 64
"""Longest source period for which `resize_window` lets OpenCV resize an aligned crop."""


def _aligned_span(src: int, dst: int, lo: int, hi: int) -> tuple[int, int, int] | None:
    """A source span [a, b) ⊇ [lo, hi) whose resize to dst/src of its size lands on whole
    output pixels: (a, b, first output index), or None when the sizes share too small a
    factor for that (the period src/gcd would be too long)."""
    g = math.gcd(src, dst)
    p, q = src // g, dst // g
    if p > _MAX_PERIOD:
        return None
    a = max(0, (lo - 4) // p * p)
    b = min(src, -(-(hi + 4) // p) * p)
    return a, b, a // p * q


def resize_window(
    image: np.ndarray, out_h: int, out_w: int, ys: slice, xs: slice, kind: str = "bicubic"
) -> np.ndarray:
    """Rows `ys`, columns `xs` of `cv2.resize(image, (out_w, out_h), kind)`, as float32.

    Only the source pixels the window's taps reach (plus a small margin) are read and
    converted to float32. When the sizes allow it, OpenCV resizes a crop that starts on a
    whole output pixel (same scale, same taps); otherwise the taps are applied here,
    horizontal pass first, then vertical, each tap added in OpenCV's order.
    """
    h, w = image.shape[:2]
    iy, wy = (a[ys] for a in taps(h, out_h, kind, "y"))
    ix, wx = (a[xs] for a in taps(w, out_w, kind, "x"))
    if iy.size == 0 or ix.size == 0:
        raise ValueError("empty window")
    r0, r1 = int(iy.min()), int(iy.max()) + 1
    c0, c1 = int(ix.min()), int(ix.max()) + 1
    span_y = _aligned_span(h, out_h, r0, r1)
    span_x = _aligned_span(w, out_w, c0, c1)
    if span_y is not None and span_x is not None and min(h, w) > 1:
        (a, b, oy), (c, d, ox) = span_y, span_x
        crop_h = out_h - oy if b == h else (b - a) * out_h // h
        crop_w = out_w - ox if d == w else (d - c) * out_w // w
        src = as_float(image[a:b, c:d])
        resized = cv2.resize(src, (crop_w, crop_h), interpolation=_CV_KINDS[kind])
        if resized.ndim < src.ndim:
            resized = resized[..., None]
        start_y, start_x = ys.indices(out_h)[0], xs.indices(out_w)[0]
        return np.ascontiguousarray(
            resized[start_y - oy : start_y - oy + len(iy), start_x - ox : start_x - ox + len(ix)]
        )
    src = as_float(image[r0:r1, c0:c1])
    extra = (None,) * (src.ndim - 2)
    across = src[:, ix[:, 0] - c0] * wx[(slice(None), 0, *extra)]
    for t in range(1, ix.shape[1]):
        across += src[:, ix[:, t] - c0] * wx[(slice(None), t, *extra)]
    out = across[iy[:, 0] - r0] * wy[(slice(None), 0, None, *extra)]
    for t in range(1, iy.shape[1]):
        out += across[iy[:, t] - r0] * wy[(slice(None), t, None, *extra)]
    return out


@lru_cache(maxsize=16)
def _area_table(src: int, dst: int) -> tuple[tuple[int, int, float], ...]:
    """OpenCV's `computeResizeAreaTab`: (destination, source, weight) along one axis."""
    scale = 1.0 / (dst / src)
    table = []
    for d in range(dst):
        fs1 = d * scale
        fs2 = fs1 + scale
        cell = min(scale, src - fs1)
        s1, s2 = math.ceil(fs1), math.floor(fs2)
        s2 = min(s2, src - 1)
        s1 = min(s1, s2)
        if s1 - fs1 > 1e-3:
            table.append((d, s1 - 1, float(np.float32((s1 - fs1) / cell))))
        table.extend((d, s, float(np.float32(1.0 / cell))) for s in range(s1, s2))
        if fs2 - s2 > 1e-3:
            table.append((d, s2, float(np.float32(min(min(fs2 - s2, 1.0), cell) / cell))))
    return tuple(table)


def area_downscale(
    image: np.ndarray, out_h: int, out_w: int, strip_rows: int = STRIP_ROWS
) -> np.ndarray:
    """`cv2.resize(image, (out_w, out_h), INTER_AREA)` as float32, `strip_rows` rows at a time.

    Area averaging is separable: each strip is averaged across by OpenCV itself, then its rows
    are added into the output rows they overlap with OpenCV's row weights, in OpenCV's order.
    An output larger than the image on either axis is not a downscale: the image is then
    small and is resized whole.
    """
    h, w = image.shape[:2]
    if out_h > h or out_w > w:
        return cv2.resize(as_float(image), (out_w, out_h), interpolation=cv2.INTER_AREA)
    out = np.zeros((out_h, out_w, *image.shape[2:]), np.float32)
    table = _area_table(h, out_h)
    entry = 0
    for top in range(0, h, strip_rows):
        bottom = min(h, top + strip_rows)
        strip = as_float(image[top:bottom])
        across = cv2.resize(strip, (out_w, bottom - top), interpolation=cv2.INTER_AREA)
        if across.ndim < out.ndim:
            across = across[..., None]
        del strip
        while entry < len(table) and table[entry][1] < bottom:
            d, s, weight = table[entry]
            out[d] += across[s - top] * np.float32(weight)
            entry += 1
    return out
