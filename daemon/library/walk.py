"""Walking a library tree: which directories and files discovery looks at, and which it refuses.

The walk lists one directory at a time, sorted by name so that results and cache keys are
stable, skips ignored names, and keeps only regular files whose names `naming.classify`
recognises. It never descends into a linked directory and never follows a symbolic link out of
the root: a link is resolved once, while listing, and one that leaves the root (or dangles, or
loops) becomes an `Unreadable` with that reason, so a scan says why instead of silently
skipping. Names are whatever the filesystem holds: bytes that are not UTF-8 arrive as
surrogate escapes (`os.fsdecode`) and are carried, unchanged, in every path.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import re
import stat
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daemon.library.naming import NamedFile, classify

#: Names a NAS or sync tool keeps beside photos (thumbnails, recycle bins, snapshots), dot-names,
#: and lmd's own state directory.
DEFAULT_IGNORE: tuple[str, ...] = ("@eaDir", ".stfolder", "#recycle", "#snapshot", ".*", ".lmd")


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A media file discovery could not examine, and why."""

    key: str
    path: Path
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "unreadable",
            "key": self.key,
            "path": str(self.path),
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class ListedFile:
    """A media file as the listing saw it: its understood name and its stat fields.

    The stat fields are the file's fingerprint: a group whose members keep size, mtime and
    inode is answered from the cache without reading content."""

    directory: Path
    named: NamedFile
    size: int
    mtime_ns: int
    inode: int

    @property
    def path(self) -> Path:
        return self.directory / self.named.name

    @property
    def stat_tuple(self) -> tuple[str, int, int, int]:
        return (self.named.name, self.size, self.mtime_ns, self.inode)


@dataclass(slots=True)
class DirectoryListing:
    """One directory's media files, and what in it could not be looked at."""

    directory: Path
    files: list[ListedFile] = field(default_factory=list)
    problems: list[Unreadable] = field(default_factory=list)


def nfc(text: str) -> str:
    """Keys are NFC: macOS writes names decomposed, Linux tools composed; one photo, one key."""
    return text if text.isascii() else unicodedata.normalize("NFC", text)


class LibraryKeys:
    """Asset keys: paths relative to the key root, NFC, with '/' separators.

    The key root is the library even when one folder of it is scanned, so a folder scan and a
    full scan give a photo the same key and nothing looks moved."""

    def __init__(self, key_root: Path) -> None:
        self.key_root = key_root
        self._dir: Path | None = None
        self._prefix = ""

    def rel(self, path: Path) -> str:
        try:
            return nfc(path.relative_to(self.key_root).as_posix())
        except ValueError:
            return nfc(path.as_posix())

    def key(self, directory: Path, base: str) -> str:
        """The key of the group `base` in `directory` (the directory's prefix is remembered:
        groups arrive directory by directory)."""
        if directory != self._dir:
            rel = self.rel(directory)
            self._dir, self._prefix = directory, ("" if rel == "." else rel + "/")
        return self._prefix + nfc(base)


def ignore_matcher(patterns: Sequence[str]) -> Callable[[str], bool]:
    """One compiled regex for all ignore patterns (fnmatch syntax, matched on names)."""
    if not patterns:
        return lambda name: False
    regex = re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))
    return lambda name: regex.match(name) is not None


def walk(root: Path, keys: LibraryKeys, ignore: Sequence[str]) -> Iterator[DirectoryListing]:
    """Every directory under `root` (resolved, a directory), depth first in name order."""
    ignored = ignore_matcher(ignore)
    stack = [root]
    while stack:
        directory = stack.pop()
        subdirs: list[Path] = []
        yield _list(directory, root, keys, ignored, subdirs)
        stack.extend(reversed(subdirs))


def _list(
    directory: Path,
    root: Path,
    keys: LibraryKeys,
    ignored: Callable[[str], bool],
    subdirs: list[Path],
) -> DirectoryListing:
    listing = DirectoryListing(directory)
    try:
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        listing.problems.append(
            Unreadable(keys.rel(directory), directory, f"cannot list: {exc.strerror}")
        )
        return listing
    for de in entries:
        name = de.name
        if ignored(name):
            continue
        path = Path(de.path)
        try:
            if de.is_symlink():
                named = classify(name)
                if named is None and not de.is_dir():
                    continue  # a link to something that is not media: none of our business
                refusal = _link_refusal(path, root)
                if refusal is not None:
                    listing.problems.append(Unreadable(keys.rel(path), path, refusal))
                    continue
                if named is None:  # a link to a directory inside the root: not descended
                    continue
            elif de.is_dir(follow_symlinks=False):
                subdirs.append(path)
                continue
            else:
                named = classify(name)
                if named is None:
                    continue
            st = de.stat()
        except OSError as exc:
            listing.problems.append(Unreadable(keys.rel(path), path, _os_reason(exc)))
            continue
        if not stat.S_ISREG(st.st_mode):
            listing.problems.append(Unreadable(keys.rel(path), path, "not a regular file"))
            continue
        listing.files.append(ListedFile(directory, named, st.st_size, st.st_mtime_ns, st.st_ino))
    return listing


def _link_refusal(path: Path, root: Path) -> str | None:
    """Why a symbolic link is not followed (loop, dangling, out of the root), or None."""
    try:
        target = Path(os.path.realpath(path, strict=True))
    except (OSError, RuntimeError) as exc:
        looped = "loop" in str(exc).lower() or getattr(exc, "errno", None) == errno.ELOOP
        return "symlink loop" if looped else "dangling symlink"
    if not target.is_relative_to(root):
        return "symlink leaves the library root"
    return None


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "vanished during the scan"
    if exc.errno == errno.ELOOP:
        return "symlink loop"
    return f"cannot stat: {exc.strerror or exc}"
