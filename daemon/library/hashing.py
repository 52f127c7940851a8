"""File signatures: stat fingerprints (for the cache) and content hashes (for job identity).

Content hash: BLAKE2b-128 of the whole file for files up to 64 MiB (every photo and Live
Photo video), prefixed `b2:`; bigger files get a sampled hash (`b2s:`) of the size plus 4 MiB
at the head, the middle and the tail, so a multi-GB video never costs a full read. BLAKE2b is
in the standard library and faster than SHA-256 on CPUs without SHA extensions.
The stat fingerprint (size, mtime_ns, inode of every file of a group) decides whether a group
can be taken from the cache without reading content.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from daemon.library.asset import FileSignature
from daemon.library.errors import UnreadableFile

FULL_HASH_LIMIT = 64 * 1024 * 1024
SAMPLE = 4 * 1024 * 1024
CHUNK = 1024 * 1024


def content_hash(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            h = hashlib.blake2b(digest_size=16)
            if size <= FULL_HASH_LIMIT:
                while chunk := fh.read(CHUNK):
                    h.update(chunk)
                return "b2:" + h.hexdigest()
            h.update(size.to_bytes(8, "big"))
            for start in (0, size // 2 - SAMPLE // 2, size - SAMPLE):
                fh.seek(start)
                h.update(fh.read(SAMPLE))
            return "b2s:" + h.hexdigest()
    except OSError as exc:
        raise UnreadableFile(f"cannot hash: {exc.strerror or exc}") from None


def signature(path: Path) -> FileSignature:
    try:
        st = os.stat(path)
    except OSError as exc:
        raise UnreadableFile(f"cannot stat: {exc.strerror or exc}") from None
    return FileSignature(st.st_size, st.st_mtime_ns, content_hash(path))


def fingerprint(entries: Iterable[tuple[str, int, int, int]]) -> str:
    """Digest of (name, size, mtime_ns, inode) of every file of a group, order-independent."""
    h = hashlib.blake2b(digest_size=16)
    for name, size, mtime_ns, inode in sorted(entries):
        h.update(f"{name}\0{size}\0{mtime_ns}\0{inode}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()
