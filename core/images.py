"""Small image helpers shared by the restorers: validation, resizing, grey conversion.

All images at the `core` boundary are float32 H×W×3 RGB in [0, 1]; these helpers keep that
convention in one place and use OpenCV because it is several times faster than numpy here.
"""

from __future__ import annotations

import cv2
import numpy as np

from core.api import RestoreError

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # BT.601, as PSNR-Y papers use


def validate_image(
    image: np.ndarray, name: str = "image", *, keep_uint8: bool = False
) -> np.ndarray:
    """Return `image` as contiguous float32 H×W×3 in [0, 1]; raise RestoreError if unusable.

    uint8/uint16 inputs are scaled; grey (H×W or H×W×1) is broadcast to RGB; alpha dropped.
    With `keep_uint8`, 8-bit input stays 8-bit (H×W×3 uint8): a restorer that streams tiles
    takes it so (a quarter of float32's memory; `Restorer.keeps_uint8`).
    """
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise RestoreError(f"{name}: expected an H×W×3 image, got shape {arr.shape}")
    if arr.shape[2] == 4:
        arr = arr[:, :, :3]
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    if arr.dtype == np.uint8:
        if keep_uint8:
            return np.ascontiguousarray(arr)
        arr = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        arr = arr.astype(np.float32) / 65535.0
    elif np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32, copy=False)
        if not np.isfinite(arr).all():
            raise RestoreError(f"{name}: contains NaN or infinite values")
        arr = np.clip(arr, 0.0, 1.0)
    else:
        raise RestoreError(f"{name}: unsupported dtype {arr.dtype}")
    return np.ascontiguousarray(arr)


def resize(
    image: np.ndarray, height: int, width: int, *, interpolation: str = "auto"
) -> np.ndarray:
    """Resize to (height, width). "auto" uses area averaging to shrink and bicubic to enlarge."""
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image.copy()
    if interpolation == "auto":
        interp = cv2.INTER_AREA if height * width < h * w else cv2.INTER_CUBIC
    else:
        interp = {
            "area": cv2.INTER_AREA,
            "bicubic": cv2.INTER_CUBIC,
            "bilinear": cv2.INTER_LINEAR,
            "lanczos": cv2.INTER_LANCZOS4,
            "nearest": cv2.INTER_NEAREST,
        }[interpolation]
    out = cv2.resize(image, (width, height), interpolation=interp)
    if out.ndim == 2 and image.ndim == 3:
        out = out[:, :, None]
    return out


def to_luma(image: np.ndarray) -> np.ndarray:
    """BT.601 luma of an RGB float image, H×W float32."""
    return (image.astype(np.float32, copy=False) @ _LUMA).astype(np.float32, copy=False)


def to_gray_u8(image: np.ndarray) -> np.ndarray:
    """8-bit luma, the input OpenCV's DIS flow wants."""
    return np.clip(to_luma(image) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def finish_pixels(rows: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Float pixels as a result of `dtype`: clipped to [0, 1], or 8 bits rounded as files store
    them (the rounding of `daemon.output`'s writer, so an 8-bit result writes the same file as
    the float one would)."""
    if dtype == np.uint8:
        return np.clip(np.rint(rows * 255.0), 0, 255).astype(np.uint8)
    return np.clip(rows, 0.0, 1.0).astype(np.float32, copy=False)
