"""ISO base media file format (MP4/MOV/HEIF) box walking with hard limits.

Two walkers: `file_boxes` lists the top-level boxes of a file by reading only their headers,
and `boxes` iterates the children of an in-memory box payload. Both stop on sizes past the
end, cap the number of boxes, and `find_path` caps nesting depth, so nested-box bombs and
lying size fields become `UnreadableFile` instead of loops or huge allocations.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from daemon.library.binio import BoundedFile, u32be, u64be
from daemon.library.errors import UnreadableFile

MAX_BOXES = 4096
MAX_DEPTH = 12


@dataclass(frozen=True, slots=True)
class Box:
    """One box: its type and where its payload lies (absolute in the file or the buffer)."""

    type: bytes
    start: int  # offset of the box header
    payload: int  # offset of the payload
    end: int  # offset just past the box

    @property
    def header_size(self) -> int:
        return self.payload - self.start


def _parse_header(head: bytes, start: int, limit: int, large: bytes | None) -> Box:
    size = u32be(head, 0)
    btype = head[4:8]
    payload = start + 8
    if size == 1:
        if large is None:
            raise UnreadableFile("truncated 64-bit box size")
        size = u64be(large, 0)
        payload = start + 16
    elif size == 0:
        size = limit - start
    if size < payload - start or start + size > limit:
        raise UnreadableFile(f"box {btype!r} at {start} has size {size} past its container")
    return Box(btype, start, payload, start + size)


def file_boxes(f: BoundedFile, start: int = 0, end: int | None = None) -> Iterator[Box]:
    """Top-level boxes of a file, reading 8-16 header bytes per box."""
    limit = f.size if end is None else end
    pos = start
    count = 0
    while pos < limit:
        if limit - pos < 8:
            raise UnreadableFile(f"{limit - pos} stray bytes after the last box")
        head = f.read_at(pos, 8)
        large = f.read_at(pos + 8, 8) if u32be(head, 0) == 1 and pos + 16 <= limit else None
        box = _parse_header(head, pos, limit, large)
        yield box
        pos = box.end
        count += 1
        if count > MAX_BOXES:
            raise UnreadableFile("too many boxes")


def boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[Box]:
    """Child boxes of an in-memory region `data[start:end]`."""
    limit = len(data) if end is None else min(end, len(data))
    pos = start
    count = 0
    while pos + 8 <= limit:
        large = data[pos + 8 : pos + 16] if u32be(data, pos) == 1 else None
        if large is not None and len(large) < 8:
            raise UnreadableFile("truncated 64-bit box size")
        box = _parse_header(data[pos : pos + 8], pos, limit, large)
        yield box
        pos = box.end
        count += 1
        if count > MAX_BOXES:
            raise UnreadableFile("too many boxes")


def child(data: bytes, parent: Box, btype: bytes, skip: int = 0) -> Box | None:
    """First child of `parent` with type `btype` (`skip` = bytes before the children)."""
    for box in boxes(data, parent.payload + skip, parent.end):
        if box.type == btype:
            return box
    return None


def children(data: bytes, parent: Box, btype: bytes, skip: int = 0) -> list[Box]:
    return [b for b in boxes(data, parent.payload + skip, parent.end) if b.type == btype]


def find_path(data: bytes, root: Box, path: list[bytes]) -> Box | None:
    """Descend `path` (box types) from `root`; None when a step is missing."""
    if len(path) > MAX_DEPTH:
        raise UnreadableFile("box path too deep")
    box: Box | None = root
    for step in path:
        assert box is not None
        skip = 4 if box.type == b"meta" and _meta_is_full(data, box) else 0
        box = child(data, box, step, skip)
        if box is None:
            return None
    return box


def _meta_is_full(data: bytes, box: Box) -> bool:
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
