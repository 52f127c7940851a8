"""An unchanged directory is answered whole from the cache; any change re-groups it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from daemon.library import synth
from daemon.library.asset import LiveAsset
from daemon.library.cache import DictAssetCache
from daemon.library.discover import discover
from daemon.library.walk import Unreadable

from .conftest import FPS, moving_frames


def _library(root: Path) -> None:
    frames = moving_frames(n=6)
    synth.write_reselected_live_photo(root / "a", "IMG_0001", frames, FPS, 1, 4)
    synth.write_reselected_live_photo(root / "a", "IMG_0002", frames, FPS, 1, 1)
    rng = np.random.default_rng(0)
    synth.write_apple_still(root / "a" / "plain.jpg", (rng.random((32, 32, 3)) * 255).astype(
        np.uint8), "00000000-0000-0000-0000-000000000000", "jpeg")


def _dicts(items: list) -> list[dict]:
    return sorted((d.to_dict() for d in items), key=lambda d: d["key"])


def test_unchanged_directory_is_one_lookup(tmp_path: Path) -> None:
    _library(tmp_path)
    cache = DictAssetCache()
    first = list(discover(tmp_path, cache=cache))
    assert all(isinstance(d, LiveAsset) for d in first) and len(first) == 2
    assert set(cache.directories) == {"dir:a"}
    remembered = cache.directories["dir:a"][0]

    # no group is looked up again: the per-group cache is emptied and still nothing is read
    cache.assets.clear()
    cache.plain.clear()
    second = list(discover(tmp_path, cache=cache))
    assert _dicts(second) == _dicts(first)
    assert cache.assets == {}  # answered by the directory entry alone

    # touching one file changes the directory's fingerprint: it is grouped (and read) again
    video = tmp_path / "a" / "IMG_0001.MOV"
    st = video.stat()
    os.utime(video, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    third = list(discover(tmp_path, cache=cache))
    decisions = ("key", "t0", "t1", "reselected", "reason", "target")
    assert [{k: d[k] for k in decisions} for d in _dicts(third)] == [
        {k: d[k] for k in decisions} for d in _dicts(first)
    ]
    assert _dicts(third)[0]["signatures"]["video"]["mtime_ns"] == st.st_mtime_ns + 1_000_000
    assert cache.directories["dir:a"][0] != remembered
    assert "a/IMG_0001" in cache.assets  # re-grouped


def test_directories_with_problems_are_not_remembered(tmp_path: Path) -> None:
    _library(tmp_path)
    (tmp_path / "a" / "IMG_0003.HEIC").write_bytes(b"not a heic at all")
    (tmp_path / "a" / "IMG_0003.MOV").write_bytes(b"")
    cache = DictAssetCache()
    found = list(discover(tmp_path, cache=cache))
    assert any(isinstance(d, Unreadable) or (isinstance(d, LiveAsset) and d.reason)
               for d in found)
    if any(isinstance(d, Unreadable) for d in found):
        assert "dir:a" not in cache.directories
