from __future__ import annotations

import itertools

import numpy as np
import pytest

from core.tiling import Blender, Tile, blend_weights, pcr_crop_origin, pcr_offset, tile_grid


@pytest.mark.parametrize(
    ("h", "w", "tile", "overlap"),
    [(1, 1, 64, 8), (37, 500, 64, 16), (64, 64, 64, 8), (65, 129, 64, 8), (1000, 777, 256, 32)],
)
def test_tile_grid_covers_every_pixel_with_overlap(h, w, tile, overlap):
    tiles = tile_grid(h, w, tile, overlap)
    cover = np.zeros((h, w), np.int32)
    for t in tiles:
        assert t.y >= 0 and t.y + t.h <= h and t.x >= 0 and t.x + t.w <= w
        assert t.h == min(tile, h) and t.w == min(tile, w)
        cover[t.slices] += 1
    assert cover.min() >= 1
    # neighbouring tiles overlap by at least `overlap` when there is more than one
    ys = sorted({t.y for t in tiles})
    for a, b in itertools.pairwise(ys):
        assert a + min(tile, h) - b >= overlap
    assert [t.index for t in tiles] == list(range(len(tiles)))


def test_tile_grid_rejects_bad_arguments():
    with pytest.raises(ValueError):
        tile_grid(10, 10, 8, 8)
    with pytest.raises(ValueError):
        tile_grid(0, 10, 8, 2)


def test_blend_weights_positive_everywhere_including_borders():
    w = blend_weights(64, 48)
    assert w.shape == (64, 48) and w.dtype == np.float32
    assert w.min() > 0
    assert w[0].min() > 0 and w[:, 0].min() > 0 and w[-1].min() > 0 and w[:, -1].min() > 0
    assert w[32, 24] > 0.99  # centre ≈ 1
    assert np.allclose(w, w[::-1, ::-1])  # symmetric


@pytest.mark.parametrize(("h", "w"), [(5, 7), (200, 300), (257, 129)])
def test_identity_processing_blends_back_to_the_input(image_factory, h, w):
    img = image_factory(h, w, seed=3)
    blender = Blender(h, w)
    for t in tile_grid(h, w, 64, 16):
        blender.add(t, img[t.slices])
    out = blender.result()
    np.testing.assert_allclose(out, img, atol=1e-5)
    # no border row or column is darkened
    np.testing.assert_allclose(out[0], img[0], atol=1e-5)
    np.testing.assert_allclose(out[:, 0], img[:, 0], atol=1e-5)


def test_blender_rejects_mismatched_tile_and_uncovered_pixels():
    b = Blender(10, 10)
    with pytest.raises(ValueError):
        b.add(Tile(0, 0, 5, 5), np.zeros((4, 5, 3), np.float32))
    b.add(Tile(0, 0, 5, 5), np.zeros((5, 5, 3), np.float32))
    with pytest.raises(ValueError):
        b.result()


def test_pcr_finds_a_global_shift_within_a_pixel(image_factory):
    from core.flow import DISFlow

    h, w = 240, 320
    big = image_factory(h + 80, w + 80, seed=5)
    dy, dx = 13, -9
    target = big[40 : 40 + h, 40 : 40 + w]
    reference = big[40 + dy : 40 + dy + h, 40 + dx : 40 + dx + w]
    # target pixel p shows what reference shows at p - (dy, dx)
    flow = DISFlow("medium")(target, reference)
    tile = Tile(80, 100, 96, 96)
    oy, ox = pcr_offset(flow, tile)
    assert abs(oy - (-dy)) < 1.0 and abs(ox - (-dx)) < 1.0
    y, x = pcr_crop_origin(flow, tile, None, (h, w), (h, w))
    assert abs(y - (tile.y - dy)) <= 1 and abs(x - (tile.x - dx)) <= 1


def test_pcr_ignores_invalid_pixels_and_clamps():
    flow = np.zeros((100, 100, 2), np.float32)
    flow[..., 0] = 30.0  # dx
    flow[..., 1] = -20.0  # dy
    valid = np.ones((100, 100), bool)
    valid[:, 50:] = False
    flow[:, 50:] = 0.0  # padding that the reference code would have averaged in
    tile = Tile(40, 20, 40, 60)
    assert pcr_offset(flow, tile, valid) == pytest.approx((-20.0, 30.0))
    # image_shape excludes padded rows/cols beyond the real image
    assert pcr_offset(flow, Tile(0, 0, 100, 100), None, (100, 50)) == pytest.approx((-20, 30))
    # clamped to the reference
    y, x = pcr_crop_origin(flow, Tile(0, 60, 40, 40), valid, None, (100, 100))
    assert (y, x) == (0, 60)  # no valid flow → no shift
    y, x = pcr_crop_origin(flow, Tile(0, 0, 40, 40), valid, None, (100, 100))
    assert (y, x) == (0, 30)  # dy=-20 clamped at 0
    y, x = pcr_crop_origin(flow, Tile(0, 0, 40, 40), None, None, (30, 30))
    assert (y, x) == (0, 0)  # crop larger than the reference
    assert pcr_offset(flow, tile, np.zeros((100, 100), bool)) == (0.0, 0.0)
