"""Files swapped between listing and reading (issue 11 item 5, reading side).

The walk lists a directory, then its files are read. A file (or the folder above it) swapped
in between for a link out of the library, or for a FIFO, must be refused with a reason: never
read through the link, never a hang. The swap runs in a callback right after the listing of
the directory (the walk's `_list`), so the race is hit every time, without sleeps.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from daemon.files.errors import UnreadableFile
from daemon.files.opening import confined_to, open_regular
from daemon.library import media, synth, walk
from daemon.library.asset import LiveAsset
from daemon.library.discover import discover

from .conftest import FPS, moving_frames


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("race")
    synth.write_reselected_live_photo(base / "album", "IMG_0001", moving_frames(n=6), FPS, 1, 4)
    return base / "album"


@pytest.fixture
def library(template: Path, tmp_path: Path) -> tuple[Path, Path]:
    """(library root with `album/` holding one reselected Live Photo, an outside copy of it)."""
    root = tmp_path / "library"
    shutil.copytree(template, root / "album")
    outside = tmp_path / "outside"
    shutil.copytree(template, outside)
    return root, outside


def _swap_after_listing(
    monkeypatch: pytest.MonkeyPatch, directory: Path, swap: Callable[[], None]
) -> list[bool]:
    """Run `swap` right after the walk has listed `directory` (before any file of it is read)."""
    done: list[bool] = []
    real_list = walk._list

    def list_then_swap(*args: object, **kwargs: object) -> walk.DirectoryListing:
        listing = real_list(*args, **kwargs)  # type: ignore[arg-type]
        if listing.directory == directory and not done:
            swap()
            done.append(True)
        return listing

    monkeypatch.setattr(walk, "_list", list_then_swap)
    return done


def _reasons(items: Iterator[object]) -> list[str]:
    out = []
    for item in items:
        reason = getattr(item, "reason", None)
        if isinstance(item, LiveAsset) and reason is None:
            out.append("restorable")
        else:
            out.append(str(reason))
    return out


def test_still_swapped_for_a_link_out_of_the_library_is_not_read(
    library: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, outside = library
    still = root / "album" / "IMG_0001.HEIC"

    def swap() -> None:
        still.unlink()
        still.symlink_to(outside / "IMG_0001.HEIC")

    swapped = _swap_after_listing(monkeypatch, root / "album", swap)
    reasons = _reasons(discover(root))
    assert swapped and still.is_symlink()
    assert reasons and all("leads out of the library" in r for r in reasons), reasons


def test_folder_swapped_for_a_link_out_of_the_library_is_not_read(
    library: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The link is above the file: no-follow on the file's own name would not see it."""
    root, outside = library
    album = root / "album"

    def swap() -> None:
        shutil.rmtree(album)
        album.symlink_to(outside, target_is_directory=True)

    swapped = _swap_after_listing(monkeypatch, album, swap)
    reasons = _reasons(discover(root))
    assert swapped and album.is_symlink()
    assert reasons and all("leads out of the library" in r for r in reasons), reasons


def test_still_swapped_for_a_fifo_is_refused_without_blocking(
    library: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _ = library
    still = root / "album" / "IMG_0001.HEIC"

    def swap() -> None:
        still.unlink()
        os.mkfifo(still)

    _swap_after_listing(monkeypatch, root / "album", swap)
    reasons: list[str] = []
    scan = threading.Thread(target=lambda: reasons.extend(_reasons(discover(root))), daemon=True)
    scan.start()
    scan.join(timeout=60)  # an open without O_NONBLOCK waits for a writer forever
    assert not scan.is_alive(), "reading a FIFO blocked the scan"
    assert reasons and all("not a regular file" in r for r in reasons), reasons


def test_a_link_that_stays_inside_the_library_is_read(library: tuple[Path, Path]) -> None:
    """The walk accepts links to media inside the root; reading follows them."""
    root, _ = library
    kept = root / "originals"
    kept.mkdir()
    still = root / "album" / "IMG_0001.HEIC"
    still.rename(kept / "IMG_0001-original.HEIC")
    still.symlink_to(Path("..") / "originals" / "IMG_0001-original.HEIC")
    assert _reasons(discover(root)) == ["restorable"]


def test_media_decoders_open_through_the_same_checks(tmp_path: Path) -> None:
    """Pillow and PyAV get the file `open_regular` opened: confined, a link out is refused;
    outside any confinement (a person naming a file) links are followed."""
    library, outside = tmp_path / "library", tmp_path / "outside"
    library.mkdir()
    outside.mkdir()
    rgb = np.full((8, 8, 3), 200, np.uint8)
    synth.write_apple_still(outside / "a.jpg", rgb, "0" * 8, "jpeg")
    (outside / "v.mov").write_bytes(synth.encode_video(moving_frames(n=2, h=16, w=16), FPS))
    (library / "a.jpg").symlink_to(outside / "a.jpg")
    (library / "v.mov").symlink_to(outside / "v.mov")
    with confined_to(library):
        with pytest.raises(UnreadableFile, match="leads out of the library"):
            media.load_still(library / "a.jpg")
        with pytest.raises(UnreadableFile, match="leads out of the library"):
            media.decode_frame_at(library / "v.mov", 0.0)
    assert media.load_still(library / "a.jpg").shape == (8, 8, 3)
    assert media.decode_frame_at(library / "v.mov", 0.0).shape == (16, 16, 3)


def test_open_regular_checks_the_listed_identity(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(b"listed")
    st = path.stat()
    with open_regular(path, identity=(st.st_dev, st.st_ino)) as fh:
        assert fh.read() == b"listed"
    path.rename(tmp_path / "aside.bin")  # kept, so its inode cannot be reused
    path.write_bytes(b"swapped in")  # a new file under the listed name
    with pytest.raises(UnreadableFile, match="another file"):
        open_regular(path, identity=(st.st_dev, st.st_ino))
