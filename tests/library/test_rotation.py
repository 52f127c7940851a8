"""Portrait Live Photos: the MOV stores landscape samples plus a display rotation.

Stills decode upright (EXIF orientation / HEIF `irot` applied), so video frames must be turned
upright too, or frame matching and the worker's video-frame target compare a portrait still
with a landscape frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from daemon.library import media, synth
from daemon.library.asset import LiveAsset
from daemon.library.discover import discover

from .conftest import FPS, moving_frames

CID = "22222222-3333-4444-5555-666666666666"


def _portrait_frames(seed: int = 0) -> list[np.ndarray]:
    return moving_frames(n=12, h=64, w=48, seed=seed)  # taller than wide: a portrait shot


@pytest.mark.parametrize("rotation", [-90, 90, 180])
def test_decoded_frame_is_upright(tmp_path: Path, rotation: int) -> None:
    frames = _portrait_frames()
    mov = synth.write_live_mov(tmp_path / "IMG_0001.MOV", frames, FPS, CID, 0.1, rotation)
    got = media.decode_frame_at(mov, 5 / FPS)
    assert got.shape == (64, 48, 3)
    err = np.abs(got * 255 - frames[5].astype(np.float32)).mean()
    assert err < 8, err


def test_small_frames_are_upright_and_match_width(tmp_path: Path) -> None:
    frames = _portrait_frames()
    mov = synth.write_live_mov(tmp_path / "IMG_0001.MOV", frames, FPS, CID, 0.1, -90)
    small = media.small_frames(mov, 24)
    assert len(small) == len(frames)
    assert all(arr.shape == (32, 24) for _, arr in small)


@pytest.mark.parametrize(
    ("seed", "with_aae", "t0", "t1"),
    [(0, True, 8, 2), (1, True, 2, 8), (1, False, 2, 8), (3, False, 3, 9)],
)
def test_portrait_reselection_is_decided_on_upright_frames(
    tmp_path: Path, seed: int, with_aae: bool, t0: int, t1: int
) -> None:
    frames = _portrait_frames(seed)
    synth.write_reselected_live_photo(
        tmp_path, "IMG_0002", frames, FPS, t0, t1, with_aae=with_aae, rotation=-90
    )
    (asset,) = list(discover(tmp_path))
    assert isinstance(asset, LiveAsset)
    assert asset.reselected and asset.reason is None
    assert asset.t1 == pytest.approx(t1 / FPS, abs=1e-3)
