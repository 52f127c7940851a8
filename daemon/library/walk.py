"""Walking a library tree: which directories and files discovery looks at, and which it refuses.

The walk lists one directory at a time, sorted by name so that results and cache keys are
stable, skips ignored names, and keeps only regular files whose names `naming.classify`
recognises. It never descends into a linked directory and never follows a symbolic link out of
the root: a link to a media file is resolved once, while listing, and one that leaves the root
(or dangles, or loops) becomes an `Unreadable` with that reason, so a scan says why instead of
silently skipping. Each directory is opened name by name from the root without following links
and listed through its descriptor, so a directory swapped for a link between its parent's
listing and its own is reported as changed, never listed. (Discovery reads each file confined to
the root, `daemon.files.opening`: a file or folder swapped for a link out of it after this
listing is refused when it is opened.) Names are whatever the filesystem holds: bytes
that are not UTF-8 arrive as surrogate escapes (`os.fsdecode`) and are carried, unchanged, in
every path.
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
    inode is answered from the cache without reading content. (Readers check the file they
    opened, not this listing: `daemon.files.opening`.)"""

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
    stack: list[tuple[str, ...]] = [()]
    while stack:
        parts = stack.pop()
        subdirs: list[tuple[str, ...]] = []
        yield _list(root, parts, keys, ignored, subdirs)
        stack.extend(reversed(subdirs))


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def _open_directory(root: Path, parts: tuple[str, ...]) -> int:
    """A descriptor of `root/parts...`, each name opened relative to its parent's descriptor
    without following a link: whatever is swapped for a link meanwhile, on any level, the walk
    cannot be led out of the root."""
    fd = os.open(root, _DIR_FLAGS)
    try:
        for part in parts:
            inner = os.open(part, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd


def _list(
    root: Path,
    parts: tuple[str, ...],
    keys: LibraryKeys,
    ignored: Callable[[str], bool],
    subdirs: list[tuple[str, ...]],
) -> DirectoryListing:
    """List `root/parts...`: found inside the root by its parent's listing, it may have been
    swapped for a link out of the library since. It is opened name by name without following
    links (`_open_directory`) and listed through that descriptor, so only a directory inside
    the root is ever listed; one that became a link is reported as changed."""
    directory = root.joinpath(*parts)
    listing = DirectoryListing(directory)
    try:
        fd = _open_directory(root, parts)
    except OSError as exc:
        swapped = exc.errno in (errno.ELOOP, errno.ENOTDIR)
        reason = "changed during the scan" if swapped else f"cannot list: {exc.strerror}"
        listing.problems.append(Unreadable(keys.rel(directory), directory, reason))
        return listing
    try:
        with os.scandir(fd) as it:
            entries = sorted(it, key=lambda e: e.name)
        for de in entries:  # DirEntry.stat() works relative to `fd`: it stays open until done
            if _take(de, directory, root, keys, ignored, listing):
                subdirs.append((*parts, de.name))
    except OSError as exc:
        listing.problems.append(
            Unreadable(keys.rel(directory), directory, f"cannot list: {exc.strerror}")
        )
    finally:
        os.close(fd)
    return listing


def _take(
    de: os.DirEntry[str],
    directory: Path,
    root: Path,
    keys: LibraryKeys,
    ignored: Callable[[str], bool],
    listing: DirectoryListing,
) -> bool:
    """Sort one directory entry into `listing` (a media file, a refusal, or nothing); True for
    a subdirectory to walk."""
    name = de.name
    if ignored(name):
        return False
    path = directory / name
    try:
        if de.is_symlink():
            named = classify(name)
            if named is None and not de.is_dir():
                return False  # a link to something that is not media: none of our business
            refusal = _link_refusal(path, root)
            if refusal is not None:
                listing.problems.append(Unreadable(keys.rel(path), path, refusal))
                return False
            if named is None:  # a link to a directory inside the root: not descended
                return False
        elif de.is_dir(follow_symlinks=False):
            return True
        else:
            named = classify(name)
            if named is None:
                return False
        st = de.stat()
    except OSError as exc:
        listing.problems.append(Unreadable(keys.rel(path), path, _os_reason(exc)))
        return False
    if not stat.S_ISREG(st.st_mode):
        listing.problems.append(Unreadable(keys.rel(path), path, "not a regular file"))
        return False
    listing.files.append(ListedFile(directory, named, st.st_size, st.st_mtime_ns, st.st_ino))
    return False


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
