"""Where discovery remembers what it found, keyed by stat fingerprints.

Every group of files has a fingerprint (name, size, mtime_ns and inode of each member), and so
has every directory (the same over all its media files). When a cache knows the fingerprint,
the remembered answer is returned without reading any content, so an unchanged rescan costs
little more than listing and stat-ing the tree. The store provides the database-backed caches;
`DictAssetCache` keeps them in memory for tests and benchmarks.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from daemon.library.asset import LiveAsset


class AssetCache(Protocol):
    """Where discovery remembers groups by stat fingerprint (the store provides a DB one)."""

    def lookup(self, key: str, fingerprint: str) -> LiveAsset | None: ...

    def remember(self, key: str, fingerprint: str, asset: LiveAsset) -> None: ...


@runtime_checkable
class PlainFileCache(Protocol):
    """Optional: remember groups that are *not* Live Photos, so rescans skip them too."""

    def is_plain(self, key: str, fingerprint: str) -> bool: ...

    def remember_plain(self, key: str, fingerprint: str) -> None: ...


@runtime_checkable
class DirectoryCache(Protocol):
    """Optional: remember what a whole directory yielded, keyed by the stat fingerprint of all
    its media files. An unchanged directory is then answered with one lookup, without grouping
    its files. Only directories that yielded no `Unreadable` are remembered (a permission
    problem or a transient I/O error must be looked at again next time)."""

    def lookup_directory(self, key: str, fingerprint: str) -> list[LiveAsset] | None: ...

    def remember_directory(self, key: str, fingerprint: str, assets: list[LiveAsset]) -> None: ...


def directory_key(rel: str) -> str:
    """A directory's cache key, apart from asset keys (a folder may share a photo's name)."""
    return "dir:" + rel


class DictAssetCache:
    """In-memory `AssetCache` + `PlainFileCache` + `DirectoryCache` (tests, benchmarks)."""

    def __init__(self) -> None:
        self.assets: dict[str, tuple[str, LiveAsset]] = {}
        self.plain: dict[str, str] = {}
        self.directories: dict[str, tuple[str, list[LiveAsset]]] = {}

    def lookup_directory(self, key: str, fingerprint: str) -> list[LiveAsset] | None:
        hit = self.directories.get(key)
        return hit[1] if hit and hit[0] == fingerprint else None

    def remember_directory(self, key: str, fingerprint: str, assets: list[LiveAsset]) -> None:
        self.directories[key] = (fingerprint, list(assets))

    def lookup(self, key: str, fingerprint: str) -> LiveAsset | None:
        hit = self.assets.get(key)
        return hit[1] if hit and hit[0] == fingerprint else None

    def remember(self, key: str, fingerprint: str, asset: LiveAsset) -> None:
        self.assets[key] = (fingerprint, asset)
        self.plain.pop(key, None)

    def is_plain(self, key: str, fingerprint: str) -> bool:
        return self.plain.get(key) == fingerprint

    def remember_plain(self, key: str, fingerprint: str) -> None:
        self.plain[key] = fingerprint
        self.assets.pop(key, None)
