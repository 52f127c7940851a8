"""File signatures: stat fingerprints (for the cache) and content digests (for job identity).

The digests themselves come from `core.hashing` (the one hashing module; its docstring says
which algorithm, the sampling policy for huge files, and how digests written by earlier
versions are recognised). The stat fingerprint (size, mtime_ns, inode of every file of a
group) decides whether a group can be taken from the cache without reading content.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from core import hashing
from daemon.library.asset import FileSignature
from daemon.library.errors import UnreadableFile


def content_hash(path: Path) -> str:
    """Named content digest of a library input (`core.hashing.content_digest`)."""
    try:
        return hashing.content_digest(path)
    except OSError as exc:
        raise UnreadableFile(f"cannot hash: {exc.strerror or exc}") from None


def signature(path: Path, previous: FileSignature | None = None) -> FileSignature:
    """Size, mtime and content digest of `path`.

    `previous` is the signature recorded for this file earlier (when the caller has one): if
    it was written with an older algorithm, has the same size and its digest still matches the
    content, its digest is kept, so a file that was only touched keeps its job identity across
    the change of hash algorithm instead of being restored again.
    """
    try:
        st = os.stat(path)
    except OSError as exc:
        raise UnreadableFile(f"cannot stat: {exc.strerror or exc}") from None
    if (
        previous is not None
        and previous.size == st.st_size
        and not hashing.is_current(previous.content_hash)
        and hashing.matches(path, previous.content_hash)
    ):
        return FileSignature(st.st_size, st.st_mtime_ns, previous.content_hash)
    return FileSignature(st.st_size, st.st_mtime_ns, content_hash(path))


def fingerprint(entries: Iterable[tuple[str, int, int, int]]) -> str:
    """Stat fingerprint of a group (`core.hashing.stat_fingerprint`, a frozen recipe)."""
    return hashing.stat_fingerprint(entries)
