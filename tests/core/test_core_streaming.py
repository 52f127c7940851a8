"""Bounded memory: the streamed pieces equal their whole-image counterparts, and bombs are
refused from the header. (Peak memory of real sizes is measured by bench/restore.py.)"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

import core
import core.guided as guided
from core.api import RestoreRequest
from core.degrade import LivePhotoDegradation
from core.flow import warp, warp_window
from core.memory import PeakMemory
from core.resample import area_downscale, as_float, resize_window
from core.tiling import Blender, StreamingBlender, tile_grid

EPS = float(np.finfo(np.float32).eps)
CV_KINDS = {"bicubic": cv2.INTER_CUBIC, "bilinear": cv2.INTER_LINEAR}
# Taps per axis and the largest sum of |weights| on one axis (cubic A = −0.75 overshoots).
TAPS = {"bicubic": (4, 1.25), "bilinear": (2, 1.0)}


@pytest.mark.parametrize("kind", ["bicubic", "bilinear"])
@pytest.mark.parametrize(
    "src,dst",
    [((180, 240), (360, 480)), ((37, 53), (100, 141)), ((143, 191), (300, 403))],
    ids=["2x", "odd", "unaligned"],
)
def test_resize_window_equals_opencv_resize(kind, src, dst):
    image = np.random.default_rng(1).random((*src, 3), dtype=np.float32)
    full = cv2.resize(image, dst[::-1], interpolation=CV_KINDS[kind])
    taps, gain = TAPS[kind]
    # taps² products of values ≤ 1 summed in float32, each rounding ≤ eps·gain²; the orders of
    # OpenCV's and our additions may differ (fused multiply-add), hence the factor 2.
    tol = 2 * taps * taps * EPS * gain * gain
    h, w = dst
    for ys, xs in [
        (slice(0, h), slice(0, w)),
        (slice(h // 3, h - 1), slice(1, w // 2 + 3)),
        (slice(h - 20, h), slice(w - 31, w)),
    ]:
        window = resize_window(image, h, w, ys, xs, kind)
        assert window.shape == full[ys, xs].shape
        np.testing.assert_allclose(window, full[ys, xs], rtol=0, atol=tol)


@pytest.mark.parametrize("src,dst", [((360, 480), (180, 240)), ((301, 517), (97, 133))])
def test_area_downscale_from_strips_equals_opencv(src, dst):
    image = (np.random.default_rng(2).random((*src, 3)) * 255).astype(np.uint8)
    full = cv2.resize(image.astype(np.float32) / 255.0, dst[::-1], interpolation=cv2.INTER_AREA)
    strips = area_downscale(image, *dst, strip_rows=7)  # strips that cut output rows apart
    # Each output averages at most (⌈scale⌉+1)² values ≤ 1, each addition rounding ≤ eps.
    terms = (np.ceil(src[0] / dst[0]) + 1) * (np.ceil(src[1] / dst[1]) + 1)
    np.testing.assert_allclose(strips, full, rtol=0, atol=terms * EPS)


@pytest.mark.parametrize("interpolation", [cv2.INTER_LINEAR, cv2.INTER_CUBIC])
def test_warp_window_reads_a_window_and_equals_warp(interpolation):
    rng = np.random.default_rng(3)
    image = (rng.random((300, 400, 3)) * 255).astype(np.uint8)
    flow = cv2.GaussianBlur(rng.standard_normal((64, 80, 2)).astype(np.float32) * 6, (0, 0), 4)
    kw = {"offset": (120.0, 150.0), "interpolation": interpolation}
    whole = warp(image.astype(np.float32) / 255.0, flow, **kw)
    window, reached = warp_window(image, flow, **kw)
    # Same coordinates moved by whole pixels (exact in float32): the same neighbours, weights.
    np.testing.assert_array_equal(window, whole)
    assert reached.all()
    capped, reached = warp_window(image, flow, bounds=(130, 170, 0, 400), **kw)
    assert 0 < reached.mean() < 1
    np.testing.assert_array_equal(capped[reached], whole[reached])


def test_streaming_blender_equals_blender():
    rng = np.random.default_rng(4)
    tiles = tile_grid(150, 170, 64, 16)
    data = [rng.random((t.h, t.w, 3), dtype=np.float32) for t in tiles]
    whole = Blender(150, 170)
    streamed = StreamingBlender(np.empty((150, 170, 3), np.float32), band_rows=64)
    for tile, d in zip(tiles, data, strict=True):
        whole.add(tile, d)
        streamed.add(tile, d)
    np.testing.assert_array_equal(streamed.result(), whole.result())
    with pytest.raises(ValueError, match="after row"):
        streamed.add(tiles[0], data[0])


class _WholeBlender:
    """The old whole-image path: every tile summed into full-size arrays, finished at the end."""

    def __init__(self, out, band_rows, finish=None):
        self.out, self.finish = out, finish
        self.blender = Blender(*out.shape)

    def add(self, tile, data):
        self.blender.add(tile, data)

    def result(self):
        self.out[:] = self.finish(self.blender.result())
        return self.out


def _whole_image_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Swap guided's streamed pieces for the whole-image OpenCV operations they stand for."""

    def whole_window(image, out_h, out_w, ys, xs, kind):
        return cv2.resize(as_float(image), (out_w, out_h), interpolation=CV_KINDS[kind])[ys, xs]

    def whole_area(image, out_h, out_w):
        return cv2.resize(as_float(image), (out_w, out_h), interpolation=cv2.INTER_AREA)

    def whole_warp(image, flow, offset, bounds, interpolation):
        whole = warp(as_float(image), flow, offset=offset, interpolation=interpolation)
        return whole, np.ones(flow.shape[:2], bool)

    monkeypatch.setattr(guided, "resize_window", whole_window)
    monkeypatch.setattr(guided, "area_downscale", whole_area)
    monkeypatch.setattr(guided, "warp_window", whole_warp)
    monkeypatch.setattr(guided, "StreamingBlender", _WholeBlender)


def test_streamed_guided_equals_the_whole_image_path(image_factory, monkeypatch):
    """An 8-bit reference streamed tile by tile (bands of 96 rows out of 240) gives the
    whole-image path's float result rounded to 8 bits."""
    reference = (image_factory(240, 320, seed=5) * 255 + 0.5).astype(np.uint8)
    truth = np.roll(reference, (4, -3), (0, 1)).astype(np.float32) / 255.0
    frame = LivePhotoDegradation(size=(120, 160)).apply(truth, seed=5)
    params = {"tile": 96, "overlap": 24}

    def run(ref):
        request = RestoreRequest(target=frame, reference=ref, restorer="guided", params=params)
        return core.restore(request).image

    streamed = run(reference)
    with monkeypatch.context() as m:
        _whole_image_path(m)
        whole = run(reference.astype(np.float32) / 255.0)
    assert streamed.dtype == np.uint8 and whole.dtype == np.float32
    # 8 bits hold the float result to within half a step (1/510); the pieces agree to float32
    # rounding (≤ 1e-5 after the blend), which can tip a value sitting on a half step.
    np.testing.assert_allclose(streamed / 255.0, whole, rtol=0, atol=0.5 / 255 + 1e-5)


def _png_declaring(width: int, height: int) -> bytes:
    """A valid PNG header declaring width×height, followed by a few bytes of pixel data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _heic_declaring(tmp_path: Path, width: int, height: int) -> bytes:
    """A real 64×64 HEIC whose `ispe` property (the size decoders believe) is rewritten."""
    from PIL import Image

    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    small = tmp_path / "small.heic"
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(small, quality=50)
    data = bytearray(small.read_bytes())
    at = data.find(b"ispe")
    assert at > 0 and struct.unpack(">II", data[at + 8 : at + 16]) == (64, 64)
    data[at + 8 : at + 16] = struct.pack(">II", width, height)
    return bytes(data)


@pytest.mark.parametrize(
    "kind,size,reason",
    [
        ("png", (100_000, 100_000), "declares more than"),  # past Pillow's own limit too
        ("png", (15_000, 15_000), "declares 15000x15000 pixels"),  # 225 MP, just past ours
        ("heic", (100_000, 100_000), "declares more than"),
    ],
)
def test_a_decompression_bomb_is_refused_before_anything_is_allocated(
    tmp_path, kind, size, reason
):
    from daemon.files.errors import UnreadableFile
    from daemon.library.media import load_still

    path = tmp_path / f"bomb.{kind}"
    path.write_bytes(_png_declaring(*size) if kind == "png" else _heic_declaring(tmp_path, *size))
    assert path.stat().st_size < 4096
    with PeakMemory() as peak, pytest.raises(UnreadableFile) as refused:
        load_still(path, dtype=np.uint8)
    message = str(refused.value)
    assert reason in message and "exceeds the limit of 200000000 (max_pixels)" in message
    # Decoding would need ≥ 675 MB (15000² RGB); refusing from the header needs nothing.
    assert peak.peak_bytes - peak.start_bytes < 32 * 2**20


def test_load_still_in_8_bits_is_the_float_image_before_scaling(tmp_path):
    from PIL import Image

    from daemon.library.media import load_still

    pixels = (np.random.default_rng(6).random((300, 517, 3)) * 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # stored on its side: shown turned a quarter clockwise
    image.save(tmp_path / "turned.jpg", exif=exif.tobytes(), quality=95)
    eight = load_still(tmp_path / "turned.jpg", dtype=np.uint8)
    as_float32 = load_still(tmp_path / "turned.jpg")
    assert eight.dtype == np.uint8 and eight.shape == (517, 300, 3)
    np.testing.assert_array_equal(eight.astype(np.float32) / 255.0, as_float32)
    with pytest.raises(ValueError, match="float32 or uint8"):
        load_still(tmp_path / "turned.jpg", dtype=np.float64)


def test_baselines_by_bands_equal_the_whole_image(image_factory):
    """600 output rows (bands of 256, the unsharp mask's blur reaching across band edges)."""
    frame = image_factory(300, 200, seed=7)
    reference = np.zeros((600, 400, 3), np.uint8)  # only its size and dtype matter

    def run(name, **params):
        request = RestoreRequest(target=frame, reference=reference, restorer=name, params=params)
        return core.restore(request).image

    up = cv2.resize(frame, (400, 600), interpolation=cv2.INTER_CUBIC)
    lanczos = cv2.resize(frame, (400, 600), interpolation=cv2.INTER_LANCZOS4)
    sharpened = lanczos + 0.8 * (lanczos - cv2.GaussianBlur(lanczos, (0, 0), 1.5))
    for got, whole in ((run("bicubic"), up), (run("sharpen", amount=0.8), sharpened)):
        assert got.dtype == np.uint8  # an 8-bit reference gets an 8-bit result
        # The same rounding as the writer's: equal except where float32 sums of a different
        # order land on either side of a half step (one level at most).
        expected = np.clip(np.rint(whole * 255.0), 0, 255)
        assert np.abs(got.astype(np.int16) - expected).max() <= 1
        assert (got == expected).mean() > 0.999
