"""The pictures the review page shows, made once when a job finishes, and the 1:1 loupe.

Why made once: decoding a 12 MP HEIC and a video frame for every page view would make the page
slow and the worker's files busy; JPEG previews of at most `PREVIEW_MAX_SIDE` pixels load at
once in a browser (which cannot show HEIC at all). The comparison strip is lmd's one comparison
layout (`daemon.comparison.comparison_image`: frame | restored | reference, whole and as 1:1
crops of the same region), so daemon jobs, the demo and `lmd restore --compare` show the same.

The loupe answers "what does this spot look like at 1:1": it crops the full-resolution
restoration (the staged still, or the published output) and the reselected frame scaled to the
same size, around a point given as fractions of the picture, never as a path.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from core.images import resize
from daemon.comparison import comparison_image
from daemon.output import atomic_write_bytes
from daemon.output.image import to_uint8
from daemon.review.layout import ReviewDirs

PREVIEW_MAX_SIDE = 2048
THUMB_MAX_SIDE = 360
LOUPE_SIDE = 240
"""Side of each loupe crop, in pixels of the restored still (shown at 1:1)."""
JPEG_QUALITY = 88


SOURCE_MAX_SIDE = 4096
"""The strip's sources and the loupe's frame are kept within this size: a 12 MP still passes
whole, a 108 MP one is not copied three times over at full size (its 1:1 detail is the
loupe's, read from the restoration itself)."""


def fit_within(image: np.ndarray, max_side: int) -> np.ndarray:
    """`image` shrunk (area averaging) so that neither side exceeds `max_side`."""
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale >= 1.0:
        return image
    return resize(image, max(1, round(h * scale)), max(1, round(w * scale)))


def as_uint8(image: np.ndarray) -> np.ndarray:
    """H×W×3 uint8 from uint8, uint16 or float in [0, 1]."""
    if image.dtype == np.uint16:
        return (image >> 8).astype(np.uint8)
    return to_uint8(image)


def frame_window(
    frame: np.ndarray, still_size: tuple[int, int], left: int, top: int, width: int,
    height: int,
) -> np.ndarray:
    """The window (left, top, width, height) of the still's pixels, taken from `frame` (the
    same view at any other size) and scaled to the still's pixels, bicubic. Destination pixel
    (u, v) samples the frame at the centre of still pixel (left + u, top + v)."""
    w, h = still_size
    fh, fw = frame.shape[:2]
    sx, sy = fw / w, fh / h
    matrix = np.float32([[sx, 0, (left + 0.5) * sx - 0.5], [0, sy, (top + 0.5) * sy - 0.5]])
    return cv2.warpAffine(
        frame, matrix, (width, height), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )


def encode(image: np.ndarray, ext: str = ".jpg") -> bytes:
    """RGB uint8 → JPEG (or PNG, lossless, fast compression) bytes."""
    bgr = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR)
    params = (
        [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if ext == ".jpg"
        else [cv2.IMWRITE_PNG_COMPRESSION, 1]
    )
    ok, data = cv2.imencode(ext, bgr, params)
    if not ok:
        raise ValueError(f"could not encode a {ext} picture of shape {image.shape}")
    return data.tobytes()


def decode_png(path: Path) -> np.ndarray:
    """A picture this module (or staging) wrote, as RGB uint8."""
    data = np.fromfile(path, np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"{path.name} is not a readable picture")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _write(path: Path, data: bytes) -> None:
    atomic_write_bytes(path, data, create_dirs=True, mode=0o600)


def make_previews(
    dirs: ReviewDirs,
    job_id: int,
    frame: np.ndarray,
    restored: np.ndarray,
    reference: np.ndarray,
) -> None:
    """Write every picture in `layout.PREVIEW_FILES` (and the frame for the loupe) for a
    finished job. Images: H×W×3 RGB, uint8 or float in [0, 1]."""
    frame8, restored8, reference8 = (
        fit_within(as_uint8(i), SOURCE_MAX_SIDE) for i in (frame, restored, reference)
    )
    after = fit_within(restored8, PREVIEW_MAX_SIDE)
    before = resize(frame8, *after.shape[:2])  # the same size: the slider overlays them
    pictures = {
        "after": after,
        "before": before,
        "reference": fit_within(reference8, PREVIEW_MAX_SIDE),
        "thumb-after": fit_within(after, THUMB_MAX_SIDE),
        "thumb-before": fit_within(before, THUMB_MAX_SIDE),
        "strip": fit_within(comparison_image(frame8, restored8, reference8), PREVIEW_MAX_SIDE),
    }
    for kind, picture in pictures.items():
        _write(dirs.preview(job_id, kind), encode(picture))
    _write(dirs.frame(job_id), encode(frame8, ".png"))


class _Decoded:
    """A few decoded full-resolution stills, so moving the loupe does not decode per request."""

    def __init__(self, size: int = 2) -> None:
        self._items: OrderedDict[tuple[str, int, int], np.ndarray] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, path: Path, load: Callable[[Path], np.ndarray]) -> np.ndarray:
        st = path.stat()
        key = (str(path), st.st_mtime_ns, st.st_size)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        image = load(path)
        with self._lock:
            self._items[key] = image
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return image


_decoded = _Decoded()


def _load_full(path: Path) -> np.ndarray:
    if path.suffix.lower() == ".png":
        return decode_png(path)
    from daemon.library.media import load_still

    return to_uint8(load_still(path, dtype=np.uint8))


def loupe(frame_path: Path, restored_path: Path, x: float, y: float) -> bytes:
    """JPEG: the reselected frame | the restoration, `LOUPE_SIDE` square crops at 1:1 of the
    restored still, centred on (x, y), fractions of the picture's width and height."""
    restored = _decoded.get(restored_path, _load_full)
    frame = _decoded.get(frame_path, decode_png)
    h, w = restored.shape[:2]
    side = min(LOUPE_SIDE, h, w)
    cx = min(max(float(x), 0.0), 1.0) * w
    cy = min(max(float(y), 0.0), 1.0) * h
    left = int(min(max(cx - side / 2, 0), w - side))
    top = int(min(max(cy - side / 2, 0), h - side))
    after = restored[top : top + side, left : left + side]
    # the same window of the frame, scaled to the still's pixels (bicubic, as `before` is)
    before = frame_window(frame, (w, h), left, top, side, side)
    gap = np.full((side, 4, 3), 255, np.uint8)
    return encode(np.concatenate([before, gap, after], axis=1))
