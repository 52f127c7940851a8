"""The one hashing module: every content digest lmd writes, and how to check an old one.

Every digest names its algorithm: ``"<algorithm>:<hex>"``. New digests use BLAKE3 (the
`blake3` package, Rust with SIMD: about 4 GB/s on one core here, against 0.9 GB/s for BLAKE2b
and 1.7 GB/s for SHA-256), 256 bits:

- ``blake3:<hex>``: the whole file (or buffer). Outputs and backups are always hashed whole.
- ``blake3-sampled:<hex>``: library inputs over `WHOLE_FILE_LIMIT` (64 MiB, far above any photo
  or Live Photo video): the size, then `SAMPLE` (4 MiB) at the head, the middle and the tail, so
  a multi-GB video never costs a full read on a slow disk. A change that keeps the size, the
  mtime *and* every sampled window is missed; that is the price, and it only concerns identity
  (a new mtime already makes discovery look again).

Why names, and what happens to digests written by earlier versions (which we *recognise* rather
than re-derive, so an upgrade never re-enqueues a library):

- ``b2:<hex>`` (BLAKE2b-128 of the whole file) and ``b2s:<hex>`` (BLAKE2b-128 of the size and
  three 4 MiB windows) were the input digests; a bare 64-digit hex string was the SHA-256 of an
  output or backup. `matches(path, digest)` recomputes *with the algorithm the digest names*, so
  a replace record or job row written before the change still proves "this file is lmd's output"
  or "this backup is the original".
- Input digests live inside job identities. Discovery only hashes a file when its stat
  fingerprint (size, mtime, inode) changed, and `stat_fingerprint` keeps its recipe byte for byte,
  so an unchanged photo keeps the digest (and so the job identity) the old code recorded. A file
  whose stat changed is hashed again with BLAKE3; `daemon.files.signature.signature` takes the
  previously recorded signature and keeps the old digest when it still matches the content.

Checkpoints (a directory of weight files) are digested by `core.livemoments`, which feeds files
into `hasher()` with `update_from_file` (whole below a limit, evenly spaced windows above) and
names the result with `tagged`.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO, Protocol

import blake3

ALGORITHM = "blake3"
SAMPLED_ALGORITHM = "blake3-sampled"
WHOLE_FILE_LIMIT = 64 * 1024 * 1024
SAMPLE = 4 * 1024 * 1024
_READ_AT_ONCE = 1024 * 1024  # files up to this size are read in one call (most photos)
_CHUNK = 1024 * 1024
_LEGACY_SHA256 = re.compile(r"[0-9a-f]{64}")
_HEX = re.compile(r"[0-9a-f]+")


class Hasher(Protocol):
    """What `update_from_file` feeds: hashlib objects and `blake3.blake3` both qualify."""

    def update(self, data: bytes | memoryview, /) -> object: ...

    def hexdigest(self) -> str: ...


class UnknownDigest(ValueError):
    """A digest whose algorithm this version does not know (so it cannot be checked)."""


def hasher() -> blake3.blake3:
    """A fresh hasher of the current algorithm (for digests built from several parts)."""
    return blake3.blake3()


def tagged(h: Hasher, algorithm: str = ALGORITHM) -> str:
    """`"<algorithm>:<hex>"` of a finished hasher."""
    return f"{algorithm}:{h.hexdigest()}"


def digest_bytes(data: bytes | memoryview) -> str:
    """Named digest of a buffer."""
    return tagged(blake3.blake3(data))


def digest_file(path: Path | str) -> str:
    """Named digest of a whole file (outputs, backups, anything compared byte for byte).

    Raises `OSError` when the file cannot be read; callers turn that into their own error.
    """
    with open(path, "rb") as fh:
        return tagged(_whole(fh, blake3.blake3()))


def digest_fd(fd: int) -> str:
    """Named digest of the whole content of an open file, read from its start with `pread`
    (the descriptor's offset is kept), for writers that hold the file open."""
    h = blake3.blake3()
    _feed_fd(fd, h)
    return tagged(h)


def content_digest(path: Path | str) -> str:
    """Named digest of a library input: whole up to `WHOLE_FILE_LIMIT`, sampled above."""
    with open(path, "rb") as fh:
        return content_digest_of(fh)


def content_digest_of(fh: BinaryIO) -> str:
    """`content_digest` of a file already open for binary reading (read from its start), for
    callers that open files their own way (`daemon.files.opening`)."""
    size = os.fstat(fh.fileno()).st_size
    fh.seek(0)
    if size <= WHOLE_FILE_LIMIT:
        return tagged(_whole(fh, blake3.blake3()))
    return tagged(_sampled(fh, size, blake3.blake3()), SAMPLED_ALGORITHM)


def update_from_file(
    h: Hasher,
    path: Path | str,
    start: int = 0,
    *,
    whole_limit: int,
    windows: int,
    window: int,
) -> None:
    """Feed `path[start:]` into `h`: whole when it is at most `whole_limit` bytes, otherwise
    `windows` evenly spaced windows of `window` bytes, the first at `start` and the last
    ending at the end of the file (the checkpoint policy: a 17 GB checkpoint is identified in
    well under a second, and a retrained one still changes its windows)."""
    if windows < 2 or window <= 0:
        raise ValueError("a sampled digest needs at least two windows of positive size")
    with open(path, "rb") as fh:
        span = max(os.fstat(fh.fileno()).st_size - start, 0)
        fh.seek(start)
        if span <= whole_limit:
            _whole(fh, h)
            return
        for i in range(windows):
            fh.seek(start + (span - window) * i // (windows - 1))
            h.update(fh.read(window))


class DigestCheck:
    """Checks bytes fed in order against a recorded whole-file digest of any known algorithm
    (`blake3`, legacy `b2` and bare SHA-256): for copying a file and proving, in the same pass,
    that the copy is what was recorded. Sampled digests cannot be checked this way."""

    def __init__(self, recorded: str) -> None:
        algorithm, self._hex = split_digest(recorded)
        if algorithm not in _STREAMING:
            raise UnknownDigest(f"{algorithm} digests cannot be checked while streaming")
        self._h = _STREAMING[algorithm]()

    def update(self, data: bytes | memoryview) -> None:
        self._h.update(data)

    def matches(self) -> bool:
        return self._h.hexdigest() == self._hex


def matches_fd(fd: int, digest: str) -> bool:
    """True when the open file's whole content has the recorded whole-file `digest` (any known
    algorithm); False for a sampled or unknown digest, or a read error."""
    try:
        check = DigestCheck(digest)
        _feed_fd(fd, check)
    except (OSError, UnknownDigest):
        return False
    return check.matches()


def same_content(recorded: str, current: str, path: Path | str) -> bool:
    """Whether a recorded digest and a fresh one of `path` describe the same content: equal
    digests do; digests of different algorithms are settled by recomputing `recorded`'s."""
    if recorded == current:
        return True
    if recorded.partition(":")[0] == current.partition(":")[0] and ":" in recorded:
        return False
    return matches(path, recorded)


def short(digest: str, n: int = 8) -> str:
    """The first `n` hex digits of a digest's value (for file names; no algorithm prefix)."""
    return split_digest(digest)[1][:n]


def split_digest(digest: str) -> tuple[str, str]:
    """(algorithm, hex) of a digest; a bare 64-digit hex string is a legacy SHA-256."""
    algorithm, sep, hexpart = digest.partition(":")
    if not sep:
        if _LEGACY_SHA256.fullmatch(digest):
            return "sha256", digest
        raise UnknownDigest(f"digest without an algorithm name: {digest[:20]!r}")
    if algorithm not in _CHECKERS or not _HEX.fullmatch(hexpart):
        raise UnknownDigest(f"unknown digest algorithm {algorithm[:20]!r}")
    return algorithm, hexpart


def is_current(digest: str) -> bool:
    """True when `digest` uses an algorithm this version writes (not a legacy one)."""
    return digest.partition(":")[0] in (ALGORITHM, SAMPLED_ALGORITHM)


def recompute(path: Path | str, digest: str) -> str:
    """Digest `path` again with the algorithm (and sampling) that `digest` names, in the same
    spelling, so the two compare equal exactly when the content matches. Raises
    `UnknownDigest` for an algorithm this version cannot compute, `OSError` when unreadable."""
    algorithm, _ = split_digest(digest)
    value = _CHECKERS[algorithm](Path(path))
    return value if ":" in digest else value.partition(":")[2]


def matches(path: Path | str, digest: str) -> bool:
    """True when `path`'s content has `digest`, whichever known algorithm wrote it.

    False for an unreadable file or an unknown algorithm (nothing can be proven then)."""
    try:
        return recompute(path, digest) == digest
    except (OSError, UnknownDigest):
        return False


def stat_fingerprint(entries: Iterable[tuple[str, int, int, int]]) -> str:
    """Digest of (name, size, mtime_ns, inode) of every file of a group, order-independent.

    A cache key compared for equality, not a content digest: its recipe (BLAKE2b-128, bare hex)
    is frozen, because every cached group of every existing database is keyed by it. Changing
    it would make the first scan after an upgrade re-read and re-hash the whole library.
    """
    h = hashlib.blake2b(digest_size=16)
    for name, size, mtime_ns, inode in sorted(entries):
        h.update(f"{name}\0{size}\0{mtime_ns}\0{inode}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


# --------------------------------------------------------------------------- internals


def _whole(fh: BinaryIO, h: Hasher) -> Hasher:
    first = fh.read(_READ_AT_ONCE)
    h.update(first)
    if len(first) == _READ_AT_ONCE:
        buf = bytearray(_CHUNK)
        view = memoryview(buf)
        while n := fh.readinto(buf):  # type: ignore[attr-defined]
            h.update(view[:n])
    return h


def _feed_fd(fd: int, h: Hasher | DigestCheck) -> None:
    offset = 0
    while chunk := os.pread(fd, _CHUNK, offset):
        h.update(chunk)
        offset += len(chunk)


def _sampled(fh: BinaryIO, size: int, h: Hasher) -> Hasher:
    """The input sampling recipe (shared by `blake3-sampled` and the legacy `b2s`)."""
    h.update(size.to_bytes(8, "big"))
    for start in (0, size // 2 - SAMPLE // 2, size - SAMPLE):
        fh.seek(start)
        h.update(fh.read(SAMPLE))
    return h


def _legacy_b2(path: Path) -> str:
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        h = hashlib.blake2b(digest_size=16)
        if size <= WHOLE_FILE_LIMIT:
            return tagged(_whole(fh, h), "b2")
        return tagged(_sampled(fh, size, h), "b2s")


def _legacy_sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return tagged(_whole(fh, hashlib.sha256()), "sha256")


_STREAMING: dict[str, Callable[[], Hasher]] = {
    ALGORITHM: blake3.blake3,
    "b2": lambda: hashlib.blake2b(digest_size=16),
    "sha256": hashlib.sha256,
}
_CHECKERS = {
    ALGORITHM: digest_file,
    SAMPLED_ALGORITHM: content_digest,
    "b2": _legacy_b2,
    "b2s": _legacy_b2,
    "sha256": _legacy_sha256,
}
