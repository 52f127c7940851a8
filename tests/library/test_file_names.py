"""Any name the filesystem allows is walked and grouped, and its path comes back byte for byte.

Linux names are bytes: not UTF-8 (`album-\\xff\\xfe`, Latin-1 `\\xe9t\\xe9`), newlines, 255
bytes long, leading dashes, Unicode in decomposed form (as macOS writes it). Python carries
bytes that are not UTF-8 as surrogate escapes (`os.fsdecode`); discovery must hand those paths
on unchanged so a reader opens the very file that was listed, while keys are NFC.
"""

from __future__ import annotations

import os
import shutil
import unicodedata
from pathlib import Path

import pytest

from daemon.library import synth
from daemon.library.asset import LiveAsset
from daemon.library.cache import DictAssetCache
from daemon.library.discover import discover

from .conftest import FPS, moving_frames

LONG_BASE = b"IMG_" + b"1" * 246  # IMG_E…1.JPG is 255 bytes, the most a Linux name may hold
WIDE_BASE = "\u00e9".encode() * 125  # 250 bytes of two-byte characters; .HEIC makes 255

#: (directory, group base) as bytes, and the asset key discovery must give it.
CASES: list[tuple[bytes, bytes, str]] = [
    (b"album-\xff\xfe", b"IMG_0001", "album-\udcff\udcfe/IMG_0001"),
    (b"latin", b"\xe9t\xe9", "latin/\udce9t\udce9"),
    (b"new\nline", b"IMG\n0002", "new\nline/IMG\n0002"),
    (b"-rf", b"--help", "-rf/--help"),
    (b"long", LONG_BASE, "long/" + LONG_BASE.decode()),
    (b"wide", WIDE_BASE, "wide/" + WIDE_BASE.decode()),
    ("Cafe\u0301".encode(), "Re\u0301sume\u0301".encode(), "Caf\u00e9/R\u00e9sum\u00e9"),
]


def _place(src: dict[str, Path], directory: Path, base: str) -> dict[str, Path]:
    """Rename a synthetic Live Photo's files to `base` (JPEG stills, so that the edited still of
    the longest base, IMG_E…, still fits in 255 bytes; the 250-byte wide base has no edited
    still, its AAE alone says T1)."""
    directory.mkdir(parents=True, exist_ok=True)
    edited = "IMG_E" + base[4:] if base.startswith("IMG_") else base + "_edited"
    names = {"reference": base + ".JPG", "video": base + ".MOV", "edited": edited + ".JPG",
             "aae": base + ".AAE"}
    if len(os.fsencode(names["edited"])) > 255:
        del names["edited"]
    placed = {}
    for role, name in names.items():
        placed[role] = directory / name
        shutil.copyfile(src[role], placed[role])
    return placed


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, Path]]]:
    """One reselected Live Photo (T0 frame 1, T1 frame 4) under every kind of name."""
    base = tmp_path_factory.mktemp("names")
    src = synth.write_reselected_live_photo(
        base / "src", "IMG_9999", moving_frames(n=6), FPS, 1, 4, still_format="jpeg", scale=2
    )
    root = base / "lib"
    placed = {}
    for directory, group, key in CASES:
        placed[key] = _place(src, root / os.fsdecode(directory), os.fsdecode(group))
    return root, placed


def test_every_name_is_found_and_decided(library: tuple[Path, dict]) -> None:
    root, placed = library
    found = {a.key: a for a in discover(root)}
    assert sorted(found) == sorted(key for _, _, key in CASES)
    for key, paths in placed.items():
        asset = found[key]
        assert isinstance(asset, LiveAsset), asset
        assert asset.reason is None and asset.reselected, (key, asset.reason)
        assert asset.t1 == pytest.approx(4 / FPS, abs=1e-3)
        # the very files that were written, byte for byte (lossless for the readers)
        assert os.fsencode(asset.reference) == os.fsencode(paths["reference"])
        assert os.fsencode(asset.video) == os.fsencode(paths["video"])
        assert asset.target == paths.get("edited")
        assert asset.sidecars == (paths["aae"],)
        assert set(asset.signatures) >= {"reference", "video", "aae"}


def test_names_really_are_what_the_test_claims(library: tuple[Path, dict]) -> None:
    """Guard on the fixture: the bytes on disk are the hostile ones (not UTF-8, 255 bytes, NFD)."""
    root, _ = library
    names = {os.fsencode(p.relative_to(root)) for p in root.rglob("*")}
    assert b"album-\xff\xfe/IMG_0001.JPG" in names
    assert b"long/IMG_E" + b"1" * 246 + b".JPG" in names
    assert max(len(os.path.basename(n)) for n in names) == 255
    nfd = "Cafe\u0301/Re\u0301sume\u0301.MOV"
    assert nfd.encode() in names and unicodedata.normalize("NFC", nfd).encode() not in names


def test_unchanged_rescan_of_hostile_names_comes_from_the_cache(
    library: tuple[Path, dict],
) -> None:
    """Directory and group cache keys built from such names match on the next scan."""
    root, _ = library
    cache = DictAssetCache()
    first = {a.key: a for a in discover(root, cache=cache)}
    assert len(cache.directories) == len(CASES)
    second = {a.key: a for a in discover(root, cache=cache)}
    assert all(second[k] is first[k] for k in first)  # answered from the cache, not re-read
