"""Library discovery: walk a tree, group files into Live Photos, decide, never raise.

`discover(root, cache=..., ignore=..., progress=...)` yields one `LiveAsset` per Live Photo or
Motion Photo found (with a `reason` when it is not restorable) and one `Unreadable` per media
file that could not be examined. Plain photos and videos are not yielded. This module joins the
three parts, each in its own module: `walk` (which directories and files are looked at; never
out of the root through a link, only regular files), `group` (which files make one Live Photo,
read and decided) and `cache` (stat fingerprints that let an unchanged rescan read no content).
The names callers use are exported here, so they need not know that split.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import structlog

from daemon.files.opening import confined_iter
from daemon.files.signature import fingerprint
from daemon.library.asset import LiveAsset
from daemon.library.cache import AssetCache, DictAssetCache, DirectoryCache, directory_key
from daemon.library.group import AssetGrouper, Discovery
from daemon.library.walk import DEFAULT_IGNORE, LibraryKeys, ListedFile, Unreadable, walk

__all__ = [
    "DEFAULT_IGNORE",
    "AssetCache",
    "DictAssetCache",
    "Discovery",
    "Unreadable",
    "discover",
]

log = structlog.get_logger(__name__)


def discover(
    root: Path,
    *,
    cache: AssetCache | None = None,
    ignore: Sequence[str] = DEFAULT_IGNORE,
    progress: Callable[[int], None] | None = None,
    key_root: Path | None = None,
) -> Iterator[Discovery]:
    """Walk `root` and yield every Live Photo / Motion Photo and every unreadable media file.

    Keys are relative to `key_root` (default: `root`): scanning one folder of a library gives
    its assets the same keys as a scan of the whole library, so nothing looks moved.
    `progress` is called with the number of media files done so far.
    """
    try:
        real_root = Path(os.path.realpath(root))
        if not real_root.is_dir():
            yield Unreadable("", Path(root), "library root is not a directory")
            return
    except OSError as exc:
        yield Unreadable("", Path(root), f"cannot open library root: {exc}")
        return
    keys = LibraryKeys(real_root if key_root is None else Path(os.path.realpath(key_root)))
    grouper = AssetGrouper(keys, cache, _Progress(progress).add)
    dir_cache = cache if isinstance(cache, DirectoryCache) else None
    # every file is read confined to the root: one swapped for a link out of it since the walk
    # listed it (or a folder above it) is refused (daemon.files.opening)
    yield from confined_iter(real_root, _walked(real_root, keys, ignore, grouper, dir_cache))


def _walked(
    root: Path,
    keys: LibraryKeys,
    ignore: Sequence[str],
    grouper: AssetGrouper,
    dir_cache: DirectoryCache | None,
) -> Iterator[Discovery]:
    for listing in walk(root, keys, ignore):
        yield from listing.problems
        if listing.problems or dir_cache is None or not listing.files:
            yield from grouper.group(listing.directory, listing.files)
        else:
            yield from _directory_cached(grouper, dir_cache, listing.directory, listing.files)


def _directory_cached(
    grouper: AssetGrouper, cache: DirectoryCache, directory: Path, files: list[ListedFile]
) -> Iterator[Discovery]:
    """`directory`, answered from the cache when none of its media files changed."""
    key = directory_key(grouper.keys.rel(directory))
    fp = fingerprint(f.stat_tuple for f in files)
    hit = cache.lookup_directory(key, fp)
    if hit is not None:
        grouper.on_files_done(len(files))
        yield from hit
        return
    found = list(grouper.group(directory, files))
    assets = [d for d in found if isinstance(d, LiveAsset)]
    if len(assets) == len(found):
        cache.remember_directory(key, fp, assets)
    yield from found


class _Progress:
    """The running count of media files done, handed to the caller's callback."""

    def __init__(self, callback: Callable[[int], None] | None) -> None:
        self.callback = callback
        self.done = 0

    def add(self, n: int) -> None:
        self.done += n
        if self.callback is not None:
            try:
                self.callback(self.done)
            except Exception:  # a broken progress callback must not stop the scan
                log.warning("progress_callback_failed", exc_info=True)
