"""Pixel access for the worker, the CLI and frame matching: stills and video frames.

`load_still` decodes a JPEG/HEIC/PNG (pillow-heif for HEIF) into RGB (float32 in [0, 1], or
8-bit for restorers that stream tiles) with the EXIF orientation applied, after checking the
size the header declares against `max_pixels` *before* anything is decoded or allocated
(decompression bombs: a few bytes can declare 100000×100000 pixels). `decode_frame_at` returns
the video frame nearest a time; an embedded Motion Photo video is read by byte range and handed
to PyAV from memory, never re-encoded. Files are opened through
`daemon.files.opening.open_regular` (a regular file, never through a link out of the library)
and handed to Pillow and PyAV as open files. Every failure is an `UnreadableFile` with a
reason.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from daemon.files.binio import BoundedFile
from daemon.files.errors import UnreadableFile
from daemon.files.opening import open_regular

DEFAULT_MAX_PIXELS = 200_000_000
"""`max_pixels` of the still loaders: the largest image lmd decodes (200 MP). A 108 MP phone
photo fits with room; the restorers stream tiles, so their memory stays bounded up to here
(bench/restore.py measures 12 and 108 MP). Larger images are refused from the header alone."""
STRIP_ROWS = 256
"""Rows copied out of the decoder at a time: never a second whole copy of a large image."""
MAX_VIDEO_BYTES = 512 * 1024 * 1024
MAX_FRAMES = 2000


def _open_image(path: Path, fh: BinaryIO, max_pixels: int):
    import pillow_heif
    from PIL import Image

    pillow_heif.register_heif_opener()
    # Pillow's own bomb check (a warning above MAX_IMAGE_PIXELS, an error above twice that)
    # must not refuse what our limit accepts; ours below is the one that decides.
    if Image.MAX_IMAGE_PIXELS is not None and max_pixels > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        img = Image.open(fh)  # reads the header only: nothing is decoded yet
    except Image.DecompressionBombError:
        raise UnreadableFile(
            f"image declares more than {2 * Image.MAX_IMAGE_PIXELS} pixels, which exceeds the "
            f"limit of {max_pixels} (max_pixels); not decoded"
        ) from None
    except Exception as exc:  # PIL raises many types for garbage input
        raise UnreadableFile(f"cannot decode image: {type(exc).__name__}: {exc}") from None
    if img.format == "HEIF":
        from daemon.library.stills import read_still_meta

        try:
            read_still_meta(path)  # bounded container check: catches a truncated file
        except UnreadableFile:
            img.close()
            raise
    w, h = img.size
    if w <= 0 or h <= 0 or w * h > max_pixels:
        img.close()
        raise UnreadableFile(
            f"image declares {w}x{h} pixels, which exceeds the limit of {max_pixels} "
            "(max_pixels); not decoded"
        )
    return img


@contextlib.contextmanager
def _decoder_failures(what: str) -> Iterator[None]:
    """Whatever a decoder raises inside (Pillow and PyAV raise many types for garbage input)
    becomes `UnreadableFile` saying it cannot decode `what`; an `UnreadableFile` passes as is."""
    try:
        yield
    except UnreadableFile:
        raise
    except Exception as exc:
        raise UnreadableFile(f"cannot decode {what}: {type(exc).__name__}: {exc}") from None


@contextlib.contextmanager
def _decoding(path: Path, max_pixels: int) -> Iterator[Any]:
    """Open an image for decoding (the file through `open_regular`, handed to Pillow open);
    any decoder failure becomes `UnreadableFile` with a reason."""
    with open_regular(path) as fh:
        img = _open_image(path, fh, max_pixels)
        try:
            with _decoder_failures("image"):
                yield img
        finally:
            img.close()


def load_still(
    path: Path, *, max_pixels: int = DEFAULT_MAX_PIXELS, dtype: type = np.float32
) -> np.ndarray:
    """RGB H×W×3, EXIF orientation applied: float32 in [0, 1], or uint8 with `dtype=np.uint8`.

    8 bits is what a restorer that streams tiles takes (`core`'s `keeps_uint8`): a quarter of
    the memory (324 MB instead of 1.3 GB at 108 MP). Either way the pixels are copied out of the
    decoder a strip of rows at a time, so there is never a second whole copy of the image.
    """
    from PIL import ImageOps

    eight_bit = np.dtype(dtype) == np.uint8
    if not eight_bit and np.dtype(dtype) != np.float32:
        raise ValueError(f"load_still gives float32 or uint8, not {dtype}")
    with _decoding(path, max_pixels) as img:
        img.load()
        ImageOps.exif_transpose(img, in_place=True)
        if img.mode != "RGB":
            rgb = img.convert("RGB")
            img.close()
            img = rgb
        w, h = img.size
        out = np.empty((h, w, 3), np.uint8 if eight_bit else np.float32)
        for top in range(0, h, STRIP_ROWS):
            bottom = min(h, top + STRIP_ROWS)
            strip = np.asarray(img.crop((0, top, w, bottom)))
            out[top:bottom] = strip if eight_bit else strip.astype(np.float32) / 255.0
        img.close()
        return out


def load_still_small(path: Path, width: int, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Luma float32 downscaled to `width` columns (aspect kept), orientation applied."""
    from PIL import Image, ImageOps

    with _decoding(path, max_pixels) as img:
        if img.format == "JPEG":
            img.draft("RGB", (width * 2, width * 2))
        upright = ImageOps.exif_transpose(img)
        w, h = upright.size
        height = max(1, round(h * width / w))
        small = upright.convert("L").resize((width, height), Image.Resampling.BOX)
        return np.asarray(small, dtype=np.float32) / 255.0


def read_embedded_video(path: Path, offset: int, length: int) -> bytes:
    """The bytes of an embedded video (Motion Photo), exactly as stored."""
    if length > MAX_VIDEO_BYTES:
        raise UnreadableFile("embedded video too large")
    with BoundedFile(path, max_single=MAX_VIDEO_BYTES, max_total=MAX_VIDEO_BYTES) as f:
        return f.read_at(offset, length)


def _open_container(source: BinaryIO):
    import av

    try:
        return av.open(source)
    except Exception as exc:
        raise UnreadableFile(f"cannot open video: {type(exc).__name__}: {exc}") from None


def _video_source(video_path: Path, offset: int | None, length: int | None) -> BinaryIO:
    """What PyAV reads: the embedded movie's bytes, or the file opened by `open_regular`."""
    if offset is not None and length is not None:
        return io.BytesIO(read_embedded_video(video_path, offset, length))
    return open_regular(video_path)


def iter_frames(
    video_path: Path, *, offset: int | None = None, length: int | None = None
) -> Iterator[tuple[float, object]]:
    """(time in seconds, av.VideoFrame) for each decoded frame, capped at `MAX_FRAMES`."""
    source = _video_source(video_path, offset, length)
    try:
        container = _open_container(source)
    except BaseException:
        source.close()
        raise
    try:
        with _decoder_failures("video"):
            if not container.streams.video:
                raise UnreadableFile("no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for i, frame in enumerate(container.decode(stream)):
                if i >= MAX_FRAMES:
                    break
                t = float(frame.time) if frame.time is not None else i * _frame_dur(stream)
                yield t, frame
    finally:
        container.close()
        source.close()


def _frame_dur(stream: object) -> float:
    rate = getattr(stream, "average_rate", None) or 30
    return 1.0 / float(rate)


def _quarter_turns(frame: object) -> int:
    """Counter-clockwise quarter turns that make a decoded frame upright.

    iPhones store portrait video as landscape samples plus a display matrix; PyAV reports its
    rotation (counter-clockwise degrees) but decodes the samples as stored. Stills are decoded
    upright, so frames are turned the same way. Angles that are not quarter turns are ignored.
    """
    angle = getattr(frame, "rotation", 0) or 0
    return round(angle / 90) % 4 if angle % 90 == 0 else 0


def _upright(arr: np.ndarray, turns: int) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(arr, turns)) if turns else arr


def upright_frames(
    video_path: Path, *, offset: int | None = None, length: int | None = None
) -> Iterator[np.ndarray]:
    """Every frame as upright RGB uint8 H×W×3, one at a time (a clip restorer's input)."""
    for _, frame in iter_frames(video_path, offset=offset, length=length):
        rgb = frame.to_ndarray(format="rgb24")  # type: ignore[attr-defined]
        yield _upright(rgb, _quarter_turns(frame))


def decode_frame_at(
    video_path: Path, t: float, *, offset: int | None = None, length: int | None = None
) -> np.ndarray:
    """RGB float32 H×W×3 in [0, 1] of the frame whose time is nearest `t`."""
    best: tuple[float, np.ndarray] | None = None
    for ft, frame in iter_frames(video_path, offset=offset, length=length):
        d = abs(ft - t)
        if best is None or d < best[0]:
            rgb = frame.to_ndarray(format="rgb24")  # type: ignore[attr-defined]
            best = (d, _upright(rgb, _quarter_turns(frame)))
        elif ft > t:
            break
    if best is None:
        raise UnreadableFile("video has no frames")
    return best[1].astype(np.float32) / 255.0


def small_frames(
    video_path: Path,
    width: int,
    *,
    offset: int | None = None,
    length: int | None = None,
) -> list[tuple[float, np.ndarray]]:
    """Every frame as (time, luma float32 downscaled to `width` columns), for matching.

    Frames are turned upright first (see `_quarter_turns`), so `width` is the upright width.
    One `VideoReformatter` serves the whole video: `frame.reformat` would build a new scaler
    per frame, which cost more than decoding the frame itself.
    """
    from av.video.reformatter import VideoReformatter

    scaler = VideoReformatter()
    out = []
    for ft, frame in iter_frames(video_path, offset=offset, length=length):
        turns = _quarter_turns(frame)
        w, h = frame.width, frame.height  # type: ignore[attr-defined]
        if turns % 2:
            w, h = h, w
        height = max(1, round(h * width / w))
        sw, sh = (height, width) if turns % 2 else (width, height)
        small = scaler.reformat(frame, width=sw, height=sh, format="gray")  # type: ignore[arg-type]
        arr = small.to_ndarray()[:sh, :sw].astype(np.float32) / 255.0
        out.append((ft, _upright(arr, turns)))
    return out
