"""Bounded random access to a file, so that no reader reads more than it needs.

Every reader goes through `BoundedFile`: reads past the end raise `UnreadableFile`, single reads
are capped, and the total bytes read through one handle are capped too, so a crafted box size
or offset can never make discovery read (or allocate) gigabytes. Every read is also charged to
the reader call's per-file budget (`daemon.files.budget`), which spans all the handles a
reader opens on one file. The limits are in `daemon.files.limits`. Files are opened through
`daemon.files.opening.open_regular` (a regular file, never through a link out of the library).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from types import TracebackType

from daemon.files import budget
from daemon.files.errors import UnreadableFile
from daemon.files.limits import FILE_READ_BYTES, MAX_SINGLE_READ
from daemon.files.opening import FileIdentity, open_regular

MAX_TOTAL_READ = FILE_READ_BYTES


class BoundedFile:
    """A read-only file handle with capped, exact reads at absolute offsets."""

    def __init__(
        self,
        path: Path,
        *,
        max_single: int = MAX_SINGLE_READ,
        max_total: int = MAX_TOTAL_READ,
        identity: FileIdentity | None = None,
    ) -> None:
        self.path = path
        self._fh = open_regular(path, identity=identity)
        self.size = os.fstat(self._fh.fileno()).st_size
        self.max_single = max_single
        self.max_total = max_total
        self.bytes_read = 0

    def read_at(self, offset: int, length: int) -> bytes:
        """Exactly `length` bytes at `offset`, or `UnreadableFile`."""
        if offset < 0 or length < 0 or offset + length > self.size:
            raise UnreadableFile(f"read of {length} bytes at {offset} is past the end")
        if length > self.max_single:
            raise UnreadableFile(f"refusing to read {length} bytes (cap {self.max_single})")
        if self.bytes_read + length > self.max_total:
            raise UnreadableFile("read budget for this file exhausted")
        budget.charge(length)
        try:
            data = os.pread(self._fh.fileno(), length, offset)
        except OSError as exc:
            raise UnreadableFile(f"read error: {exc.strerror or exc}") from None
        if len(data) != length:
            raise UnreadableFile("file shrank while reading")
        self.bytes_read += length
        return data

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> BoundedFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def u8(data: bytes, pos: int) -> int:
    """One byte (a box's version field); a box too short for it is `UnreadableFile`."""
    if pos >= len(data) or pos < 0:
        raise UnreadableFile("truncated 8-bit field")
    return data[pos]


def u16be(data: bytes, pos: int) -> int:
    if pos + 2 > len(data) or pos < 0:
        raise UnreadableFile("truncated 16-bit field")
    return struct.unpack_from(">H", data, pos)[0]


def u32be(data: bytes, pos: int) -> int:
    if pos + 4 > len(data) or pos < 0:
        raise UnreadableFile("truncated 32-bit field")
    return struct.unpack_from(">I", data, pos)[0]


def i32be(data: bytes, pos: int) -> int:
    if pos + 4 > len(data) or pos < 0:
        raise UnreadableFile("truncated 32-bit field")
    return struct.unpack_from(">i", data, pos)[0]


def u64be(data: bytes, pos: int) -> int:
    if pos + 8 > len(data) or pos < 0:
        raise UnreadableFile("truncated 64-bit field")
    return struct.unpack_from(">Q", data, pos)[0]


def i64be(data: bytes, pos: int) -> int:
    if pos + 8 > len(data) or pos < 0:
        raise UnreadableFile("truncated 64-bit field")
    return struct.unpack_from(">q", data, pos)[0]
