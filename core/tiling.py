"""Overlapping tiles, Patch Correspondence Retrieval (PCR) and seamless blending — pure numpy.

Why tiles: memory. A 12 MP image is processed in windows so peak memory stays bounded (and,
for the diffusion restorer, so each window fits the model's 1024 px input). Why PCR: the
reference crop for a tile must show the same scene content as the tile, which after camera
motion sits elsewhere in the reference; PCR shifts the crop by the mean flow inside the tile.

Conventions: a tile is the half-open window [y, y+h) × [x, x+w) of the *target* grid. Flows
are H×W×2 arrays (dx, dy) in pixels from the target grid to the reference grid.

Fixes relative to the LiveMoments reference code (design §6): the PCR mean ignores padded or
invalid flow instead of averaging in zeros, and blend weights have a positive floor so the
image's first/last rows and columns are never lost or darkened.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Tile:
    """A window [y, y+h) × [x, x+w) of the image; `index` is its position in the grid."""

    y: int
    x: int
    h: int
    w: int
    index: int = 0

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y, self.y + self.h), slice(self.x, self.x + self.w)

    @property
    def center(self) -> tuple[float, float]:
        """(cy, cx) in continuous pixel coordinates."""
        return self.y + self.h / 2.0, self.x + self.w / 2.0


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    """Tile starts along one axis: first at 0, last flush with the end, evenly spread."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    count = math.ceil((length - tile) / stride) + 1
    last = length - tile
    # Spread evenly so every overlap is at least `overlap` wide.
    return [round(i * last / (count - 1)) for i in range(count)]


def tile_grid(height: int, width: int, tile: int, overlap: int) -> list[Tile]:
    """Tiles of at most tile×tile covering an height×width image, overlapping ≥ `overlap`.

    Images smaller than a tile give one tile of the image's own size (no padding needed by
    the caller; a restorer that needs a fixed input size pads the tile itself).
    """
    if height < 1 or width < 1:
        raise ValueError(f"empty image {height}x{width}")
    if tile < 1 or not 0 <= overlap < tile:
        raise ValueError(f"need tile ≥ 1 and 0 ≤ overlap < tile, got {tile}, {overlap}")
    tiles: list[Tile] = []
    for y in _starts(height, tile, overlap):
        for x in _starts(width, tile, overlap):
            tiles.append(Tile(y=y, x=x, h=min(tile, height), w=min(tile, width), index=len(tiles)))
    return tiles


def pcr_offset(
    flow: np.ndarray,
    tile: Tile,
    valid_mask: np.ndarray | None = None,
    image_shape: tuple[int, int] | None = None,
) -> tuple[float, float]:
    """Mean (dy, dx) of the flow inside `tile`, ignoring pixels where `valid_mask` is False.

    `flow` is the full-image target→reference flow (H×W×2, dx first). `image_shape` bounds
    the tile to the real image when the flow was padded (pixels beyond it are ignored). With
    no valid pixel at all the offset is (0, 0): the crop then sits where the tile is.
    """
    ys, xs = tile.slices
    if image_shape is not None:
        ys = slice(ys.start, min(ys.stop, image_shape[0]))
        xs = slice(xs.start, min(xs.stop, image_shape[1]))
    # A mean needs no million samples: a regular subsample of ≤ ~65k pixels is enough and
    # keeps this cheap on 1024² tiles.
    step = max(1, math.isqrt(max(1, (ys.stop - ys.start) * (xs.stop - xs.start)) // 65536))
    ys, xs = slice(ys.start, ys.stop, step), slice(xs.start, xs.stop, step)
    patch = flow[ys, xs].reshape(-1, 2)
    if valid_mask is not None:
        patch = patch[valid_mask[ys, xs].reshape(-1).astype(bool)]
    if patch.size == 0:
        return 0.0, 0.0
    dx, dy = patch.astype(np.float64).mean(axis=0)
    return float(dy), float(dx)


def pcr_crop_origin(
    flow: np.ndarray,
    tile: Tile,
    valid_mask: np.ndarray | None,
    image_shape: tuple[int, int] | None,
    reference_shape: tuple[int, int],
    crop_size: tuple[int, int] | None = None,
) -> tuple[int, int]:
    """Top-left (y, x) of the reference crop matching `tile`, clamped inside the reference.

    The crop (default: the tile's size) is centred on the tile centre moved by the PCR offset,
    rounded to whole pixels and clamped to [0, ref − crop] (or 0 when the crop is larger).
    """
    return place_crop(
        tile, pcr_offset(flow, tile, valid_mask, image_shape), reference_shape, crop_size
    )


def place_crop(
    tile: Tile,
    offset: tuple[float, float],
    reference_shape: tuple[int, int],
    crop_size: tuple[int, int] | None = None,
) -> tuple[int, int]:
    """Top-left (y, x) of the crop centred on the tile centre moved by `offset` (dy, dx).

    Rounded to whole pixels and clamped to [0, ref − crop] (or 0 when the crop is larger);
    the second half of `pcr_crop_origin`, for callers that hold the tile's flow on its own.
    """
    ch, cw = crop_size if crop_size is not None else (tile.h, tile.w)
    dy, dx = offset
    cy, cx = tile.center
    y = round(cy + dy - ch / 2.0)
    x = round(cx + dx - cw / 2.0)
    rh, rw = reference_shape
    y = min(max(y, 0), max(rh - ch, 0))
    x = min(max(x, 0), max(rw - cw, 0))
    return int(y), int(x)


def blend_weights(tile_h: int, tile_w: int, floor: float = 1e-3) -> np.ndarray:
    """tile_h×tile_w float32 C² window (1−u²)(1−v²), u, v ∈ (−1, 1), floored at `floor`.

    The samples are taken at pixel centres, so no row or column has zero weight (the
    reference code sampled the endpoints ±1 and lost the image's first row and column); the
    floor keeps corners of single-tile images from dividing by almost zero.
    """
    if floor <= 0:
        raise ValueError("floor must be positive")

    def axis(n: int) -> np.ndarray:
        u = (np.arange(n, dtype=np.float64) + 0.5) / n * 2.0 - 1.0
        return 1.0 - u * u

    window = np.outer(axis(tile_h), axis(tile_w))
    return np.maximum(window, floor).astype(np.float32)


class Blender:
    """Accumulates weighted tiles and returns their normalised blend.

    `add(tile, data)` with data tile.h×tile.w(×C); `result()` divides by the summed weights.
    Every pixel covered by at least one tile gets a positive weight, so the result is exact
    where tiles agree (identity processing gives the input back).
    """

    def __init__(self, height: int, width: int, channels: int = 3, floor: float = 1e-3) -> None:
        self.height, self.width, self.channels = height, width, channels
        self._acc = np.zeros((height, width, channels), dtype=np.float32)
        self._wsum = np.zeros((height, width, 1), dtype=np.float32)
        self._floor = floor
        self._windows: dict[tuple[int, int], np.ndarray] = {}

    def weights(self, h: int, w: int) -> np.ndarray:
        key = (h, w)
        if key not in self._windows:
            self._windows[key] = blend_weights(h, w, self._floor)[:, :, None]
        return self._windows[key]

    def add(self, tile: Tile, data: np.ndarray, weight: np.ndarray | None = None) -> None:
        """Add a tile's output; `weight` (h×w) optionally multiplies the window."""
        if data.ndim == 2:
            data = data[:, :, None]
        if data.shape[:2] != (tile.h, tile.w):
            raise ValueError(f"tile data {data.shape[:2]} does not match tile {tile.h}x{tile.w}")
        win = self.weights(tile.h, tile.w)
        if weight is not None:
            win = win * np.maximum(weight, self._floor)[:, :, None]
        ys, xs = tile.slices
        self._acc[ys, xs] += data * win
        self._wsum[ys, xs] += win

    def result(self) -> np.ndarray:
        if (self._wsum <= 0).any():
            raise ValueError("some pixels were not covered by any tile")
        out = self._acc / self._wsum
        return out if self.channels > 1 else out[:, :, 0]


class StreamingBlender:
    """`Blender` for tiles that arrive in the grid's row order, holding one band of rows.

    Why: the plain `Blender` keeps float32 sums for the whole image (1.7 GB at 108 MP). Tiles
    from `tile_grid` come row by row, so once a tile starting at row y arrives, every row above
    y is final: it is normalised, converted by `finish` (e.g. clipped and quantised to 8 bits)
    and written into `out`, and the band moves down. Per pixel the arithmetic is the same as
    `Blender`'s (same weights, same order of additions), so the results are equal.
    """

    def __init__(
        self,
        out: np.ndarray,
        band_rows: int,
        finish: Callable[[np.ndarray], np.ndarray] | None = None,
        floor: float = 1e-3,
    ) -> None:
        if out.ndim != 3:
            raise ValueError(f"out must be H×W×C, got shape {out.shape}")
        self.out = out
        self.height, self.width, self.channels = out.shape
        self.band_rows = min(band_rows, self.height)
        self._finish = finish
        self._floor = floor
        self._top = 0
        self._acc = np.zeros((self.band_rows, self.width, self.channels), np.float32)
        self._wsum = np.zeros((self.band_rows, self.width, 1), np.float32)
        self._windows: dict[tuple[int, int], np.ndarray] = {}

    def _window(self, h: int, w: int) -> np.ndarray:
        if (h, w) not in self._windows:
            self._windows[(h, w)] = blend_weights(h, w, self._floor)[:, :, None]
        return self._windows[(h, w)]

    def add(self, tile: Tile, data: np.ndarray, weight: np.ndarray | None = None) -> None:
        """Add a tile's output (tile.h×tile.w×C); tiles must not start above an earlier one."""
        if data.ndim == 2:
            data = data[:, :, None]
        if data.shape[:2] != (tile.h, tile.w):
            raise ValueError(f"tile data {data.shape[:2]} does not match tile {tile.h}x{tile.w}")
        if tile.y < self._top:
            raise ValueError(f"tile at row {tile.y} arrived after row {self._top} was finished")
        if tile.h > self.band_rows:
            raise ValueError(f"tile of {tile.h} rows does not fit a band of {self.band_rows}")
        self.flush(min(tile.y, self.height - self.band_rows))
        win = self._window(tile.h, tile.w)
        if weight is not None:
            win = win * np.maximum(weight, self._floor)[:, :, None]
        ys = slice(tile.y - self._top, tile.y - self._top + tile.h)
        xs = slice(tile.x, tile.x + tile.w)
        self._acc[ys, xs] += data * win
        self._wsum[ys, xs] += win

    def flush(self, row: int) -> None:
        """Write the rows above `row` (they must be final) and move the band down to it."""
        done = row - self._top
        if done <= 0:
            return
        if done > self.band_rows:
            first = self._top + self.band_rows
            raise ValueError(f"rows {first}..{row} were not covered by any tile")
        self._write(done)
        keep = self.band_rows - done
        if keep > 0:
            self._acc[:keep] = self._acc[done:].copy()
            self._wsum[:keep] = self._wsum[done:].copy()
        self._acc[keep:] = 0.0
        self._wsum[keep:] = 0.0
        self._top = row

    def _write(self, rows: int) -> None:
        wsum = self._wsum[:rows]
        if (wsum <= 0).any():
            raise ValueError("some pixels were not covered by any tile")
        blended = self._acc[:rows] / wsum
        if self._finish is not None:
            blended = self._finish(blended)
        self.out[self._top : self._top + rows] = blended

    def result(self) -> np.ndarray:
        """Write the last band and return `out`."""
        self._write(self.height - self._top)
        self._top = self.height
        return self.out
