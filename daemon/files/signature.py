"""File signatures: what identifies one file's content, and the stat fingerprint of a group.

`FileSignature` (size, mtime_ns, named content digest) is recorded for every input of a job and
for every file lmd writes, by discovery (`daemon.library`) and by the writers (`daemon.output`)
alike, hence its home here. The digests come from `core.hashing`, whose docstring says which
algorithm, the sampling policy for huge files, and how digests written by earlier versions are
recognised. The stat fingerprint (size, mtime_ns, inode of every file of a group) decides
whether discovery can take a group from its cache without reading any content.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

from core import hashing
from daemon.files.errors import UnreadableFile
from daemon.files.opening import FileIdentity, open_regular


@dataclass(frozen=True, slots=True)
class FileSignature:
    """Identity of one file's content: cheap stat fields plus a named content digest."""

    size: int
    mtime_ns: int
    content_hash: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileSignature:
        return cls(int(data["size"]), int(data["mtime_ns"]), str(data["content_hash"]))


def content_hash(path: Path, *, identity: FileIdentity | None = None) -> str:
    """Named content digest of a library input (`core.hashing.content_digest`), opened through
    `daemon.files.opening.open_regular`."""
    with open_regular(path, identity=identity) as fh:
        return _digest(fh)


def _digest(fh: BinaryIO) -> str:
    try:
        return hashing.content_digest_of(fh)
    except OSError as exc:
        raise UnreadableFile(f"cannot hash: {exc.strerror or exc}") from None


def signature(
    path: Path, previous: FileSignature | None = None, *, identity: FileIdentity | None = None
) -> FileSignature:
    """Size, mtime and content digest of a library input, all of the one file opened (through
    `daemon.files.opening.open_regular`).

    `previous` is the signature recorded for this file earlier (when the caller has one): if
    it was written with an older algorithm, has the same size and its digest still matches the
    content, its digest is kept, so a file that was only touched keeps its job identity across
    the change of hash algorithm instead of being restored again. (That check, for digests of
    earlier versions only, reads the file again by name.)
    """
    with open_regular(path, identity=identity) as fh:
        st = os.fstat(fh.fileno())
        if (
            previous is not None
            and previous.size == st.st_size
            and not hashing.is_current(previous.content_hash)
            and hashing.matches(path, previous.content_hash)
        ):
            return FileSignature(st.st_size, st.st_mtime_ns, previous.content_hash)
        return FileSignature(st.st_size, st.st_mtime_ns, _digest(fh))


def written_signature(path: Path) -> FileSignature:
    """Signature of a file lmd wrote (an output, a backup): always a whole-file digest.

    Raises `OSError` when the file cannot be read (the writers have their own error type)."""
    st = os.stat(path)
    return FileSignature(st.st_size, st.st_mtime_ns, hashing.digest_file(path))


def fingerprint(entries: Iterable[tuple[str, int, int, int]]) -> str:
    """Stat fingerprint of a group (`core.hashing.stat_fingerprint`, a frozen recipe)."""
    return hashing.stat_fingerprint(entries)
