from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from core.colorfix import wavelet_color_fix, wavelet_low
from core.degrade import LivePhotoDegradation
from core.metrics import psnr_y, ssim_y


def test_wavelet_color_fix_takes_detail_from_target_and_colour_from_source(image_factory):
    img = image_factory(96, 128, seed=2)
    tinted = np.clip(img * np.array([1.2, 0.9, 0.8], np.float32), 0, 1)
    fixed = wavelet_color_fix(tinted, img)
    # colour (low band) now matches the source
    assert np.abs(wavelet_low(fixed) - wavelet_low(img)).mean() < 0.01
    assert np.abs(fixed.mean((0, 1)) - img.mean((0, 1))).max() < 0.01
    # the target's detail survives: a blurry source does not blur the output
    blurry = cv2.GaussianBlur(img, (0, 0), 3)
    out = wavelet_color_fix(img, blurry)
    assert psnr_y(out, img) > psnr_y(blurry, img) + 5
    assert fixed.dtype == np.float32 and fixed.min() >= 0 and fixed.max() <= 1
    with pytest.raises(ValueError):
        wavelet_color_fix(img, img[:10])


def test_psnr_and_ssim():
    rng = np.random.default_rng(0)
    a = rng.random((64, 64, 3)).astype(np.float32)
    assert psnr_y(a, a) == math.inf
    assert ssim_y(a, a) == pytest.approx(1.0)
    b = np.clip(a + 0.1, 0, 1)
    assert 15 < psnr_y(b, a) < 25
    noisy = np.clip(a + rng.normal(0, 0.2, a.shape).astype(np.float32), 0, 1)
    assert ssim_y(noisy, a) < ssim_y(b, a)
    # known value: uniform error of 1/255 on Y → 48.13 dB
    c = np.full((8, 8, 3), 0.5, np.float32)
    assert psnr_y(c + 1 / 255, c) == pytest.approx(48.13, abs=0.01)


@pytest.mark.parametrize("codec", ["h264", "hevc", None])
def test_degradation_is_deterministic_and_degrades(image_factory, codec):
    img = image_factory(121, 161, seed=4)  # odd size on purpose
    deg = LivePhotoDegradation(scale=0.5, codec=codec)
    a = deg.apply(img, seed=7)
    assert a.shape == (60, 80, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, deg.apply(img, seed=7))
    assert not np.array_equal(a, deg.apply(img, seed=8))
    clean = cv2.resize(img, (80, 60), interpolation=cv2.INTER_AREA)
    assert 20 < psnr_y(a, clean) < 45  # degraded, but still the same picture


def test_matching_degradation_is_noise_free_and_sized(image_factory):
    img = image_factory(100, 100, seed=1)
    deg = LivePhotoDegradation.for_matching((40, 30))
    out = deg.apply(img, seed=1)
    assert out.shape == (40, 30, 3)
    np.testing.assert_array_equal(out, deg.apply(img, seed=2))
