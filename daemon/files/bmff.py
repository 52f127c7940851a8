"""ISO base media file format (MP4/MOV/HEIF) boxes: reading with hard limits, and writing.

Reading: `file_boxes` lists the top-level boxes of a file by reading only their headers, and
`boxes` iterates the children of an in-memory box payload. Both stop on sizes past the end and
cap the number of boxes per container, `find_path`/`check_depth` cap nesting depth, and every
box is counted against the reader call's per-file budget (`daemon.files.budget`), so
nested-box bombs and lying size fields become `UnreadableFile` instead of loops or huge
allocations. The walkers run for every Live Photo video of a scan, so the header is decoded
with one precompiled `struct` call per box.

Writing: `box` and `full_box` build a box from its payload (the fixture builders in
`daemon.library.synth` write MOV metadata and HEIF `mpvd` boxes with them), so the byte layout
is known in one place for both directions.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from typing import NamedTuple

from daemon.files import budget
from daemon.files.binio import BoundedFile
from daemon.files.errors import UnreadableFile
from daemon.files.limits import BOX_MAX_DEPTH as MAX_DEPTH
from daemon.files.limits import MAX_BOXES

_HEAD = struct.Struct(">I4s")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


class Box(NamedTuple):
    """One box: its type and where its payload lies (absolute in the file or the buffer)."""

    type: bytes
    start: int  # offset of the box header
    payload: int  # offset of the payload
    end: int  # offset just past the box

    @property
    def header_size(self) -> int:
        return self.payload - self.start


def _checked(btype: bytes, start: int, payload: int, size: int, limit: int) -> Box:
    if size < payload - start or start + size > limit:
        raise UnreadableFile(f"box {btype!r} at {start} has size {size} past its container")
    return Box(btype, start, payload, start + size)


def _walk(
    read: Callable[[int, int], bytes], pos: int, limit: int, *, stray_tail: bool
) -> Iterator[Box]:
    """The boxes from `pos` to `limit`, each header fetched by `read(offset, length)`.

    One walker for files and buffers, so both apply the same size checks, box cap and budget.
    A tail under 8 bytes is ignored when `stray_tail` allows it, else `UnreadableFile`.
    """
    count = 0
    while pos < limit:
        if limit - pos < 8:
            if stray_tail:
                return
            raise UnreadableFile(f"{limit - pos} stray bytes after the last box")
        size, btype = _HEAD.unpack(read(pos, 8))
        payload = pos + 8
        if size == 1:
            if pos + 16 > limit:
                raise UnreadableFile("truncated 64-bit box size")
            (size,) = _U64.unpack(read(pos + 8, 8))
            payload = pos + 16
        elif size == 0:
            size = limit - pos
        box = _checked(btype, pos, payload, size, limit)
        budget.visit("a box")
        yield box
        pos = box.end
        count += 1
        if count > MAX_BOXES:
            raise UnreadableFile(f"too many boxes: more than {MAX_BOXES} in one container")


def file_boxes(f: BoundedFile, start: int = 0, end: int | None = None) -> Iterator[Box]:
    """Top-level boxes of a file, reading 8-16 header bytes per box."""
    limit = f.size if end is None else end
    yield from _walk(f.read_at, start, limit, stray_tail=False)


def boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[Box]:
    """Child boxes of an in-memory region `data[start:end]` (a tail under 8 bytes is ignored)."""
    limit = len(data) if end is None else min(end, len(data))
    yield from _walk(lambda pos, n: data[pos : pos + n], max(start, 0), limit, stray_tail=True)


def child(data: bytes, parent: Box, btype: bytes, skip: int = 0) -> Box | None:
    """First child of `parent` with type `btype` (`skip` = bytes before the children)."""
    for box in boxes(data, parent.payload + skip, parent.end):
        if box.type == btype:
            return box
    return None


def first_children(data: bytes, parent: Box, skip: int = 0) -> dict[bytes, Box]:
    """Type -> first child of `parent`, in one pass (for readers that look up several)."""
    out: dict[bytes, Box] = {}
    for box in boxes(data, parent.payload + skip, parent.end):
        out.setdefault(box.type, box)
    return out


def children(data: bytes, parent: Box, btype: bytes, skip: int = 0) -> list[Box]:
    return [b for b in boxes(data, parent.payload + skip, parent.end) if b.type == btype]


def find_path(data: bytes, root: Box, path: list[bytes]) -> Box | None:
    """Descend `path` (box types) from `root`; None when a step is missing."""
    if len(path) > MAX_DEPTH:
        raise UnreadableFile("box path too deep")
    box: Box | None = root
    for step in path:
        assert box is not None
        skip = 4 if box.type == b"meta" and meta_is_full(data, box) else 0
        box = child(data, box, step, skip)
        if box is None:
            return None
    return box


def meta_is_full(data: bytes, box: Box) -> bool:
    """`meta` is a FullBox in ISO files but a plain box in QuickTime; tell them apart."""
    if box.payload + 8 > box.end:
        return True
    return data[box.payload + 4 : box.payload + 8] != b"hdlr"


def whole(data: bytes) -> Box:
    """A pseudo-box spanning an in-memory buffer, to use as a walking root."""
    return Box(b"root", 0, 0, len(data))


def check_depth(data: bytes, root: Box, depth: int = 0) -> None:
    """Raise if containers nest deeper than `MAX_DEPTH` (guards recursive consumers)."""
    if depth > MAX_DEPTH:
        raise UnreadableFile("boxes nested too deeply")
    for box in boxes(data, root.payload, root.end):
        if box.type in CONTAINERS:
            check_depth(data, box, depth + 1)


CONTAINERS = frozenset(
    {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"udta", b"dinf", b"iprp", b"ipco"}
)


# --------------------------------------------------------------------------- writing


def box(btype: bytes, payload: bytes) -> bytes:
    """A box of type `btype` around `payload` (64-bit size form when it does not fit 32 bits)."""
    if len(btype) != 4:
        raise ValueError(f"box type must be 4 bytes, got {btype!r}")
    if 8 + len(payload) <= 0xFFFFFFFF:
        return _U32.pack(8 + len(payload)) + btype + payload
    return _U32.pack(1) + btype + _U64.pack(16 + len(payload)) + payload


def full_box(btype: bytes, payload: bytes, version: int = 0, flags: int = 0) -> bytes:
    """A FullBox: `box` with the version byte and 24-bit flags before `payload`."""
    return box(btype, _U32.pack((version << 24) | (flags & 0xFFFFFF)) + payload)
