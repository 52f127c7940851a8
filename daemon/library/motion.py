"""Android Motion Photos: where the embedded video is and what its key time is.

Sources, in the order trusted (formats page 2): a HEIF top-level `mpvd` box; a Samsung SEF
trailer (`MotionPhoto_Data`, whose XMP values are often nonsense); Google Motion Photo XMP
(`Camera`/`GCamera` namespaces, `Container:Directory` walked backwards from EOF as media3
does) and legacy `MicroVideoOffset`. The XMP is parsed with a size cap and no DTD/entities.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

from daemon.library.binio import BoundedFile
from daemon.library.errors import UnreadableFile
from daemon.library.stills import StillMeta

MAX_XMP_BYTES = 1024 * 1024
MAX_SEF_ENTRIES = 64
SEF_MOTION = 0x0A30

_ATTR = re.compile(rb'([A-Za-z]+):([A-Za-z]+)\s*=\s*"([^"]*)"')
_ELEM = re.compile(rb"<([A-Za-z]+):([A-Za-z]+)>([^<]*)</\1:\2>")
_ITEM = re.compile(rb"<(?:G?Container):Item\b([^>]*)>|<rdf:li\b([^>]*Item:[^>]*)>", re.S)
CAMERA_PREFIXES = {b"Camera", b"GCamera"}


@dataclass(frozen=True, slots=True)
class MotionInfo:
    video_offset: int
    video_length: int
    presentation_us: int | None  # None when unset (-1) or absent
    source: str  # "mpvd" | "seft" | "xmp" | "microvideo"


def xmp_fields(xmp: bytes) -> dict[tuple[bytes, bytes], bytes]:
    """(prefix, name) -> value for attribute and simple element properties of an XMP packet."""
    if len(xmp) > MAX_XMP_BYTES:
        raise UnreadableFile("XMP packet too large")
    if b"<!ENTITY" in xmp or b"<!DOCTYPE" in xmp:
        raise UnreadableFile("XMP declares a DTD")
    out: dict[tuple[bytes, bytes], bytes] = {}
    for m in _ATTR.finditer(xmp):
        out.setdefault((m.group(1), m.group(2)), m.group(3))
    for m in _ELEM.finditer(xmp):
        out.setdefault((m.group(1), m.group(2)), m.group(3).strip())
    return out


def _camera(fields: dict[tuple[bytes, bytes], bytes], name: bytes) -> bytes | None:
    for prefix in CAMERA_PREFIXES:
        if (prefix, name) in fields:
            return fields[(prefix, name)]
    return None


def _int(value: bytes | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


def directory_items(xmp: bytes) -> list[dict[bytes, bytes]]:
    """The `Container:Directory` items, each as {Mime, Semantic, Length, Padding}."""
    items = []
    for m in _ITEM.finditer(xmp):
        attrs = m.group(1) or m.group(2) or b""
        item = {k: v for p, k, v in _ATTR.findall(attrs) if p in (b"Item", b"GContainerItem")}
        if item:
            items.append(item)
        if len(items) > 64:
            raise UnreadableFile("too many Container items")
    return items


def is_motion_xmp(xmp: bytes | None) -> bool:
    if not xmp:
        return False
    fields = xmp_fields(xmp)
    return _camera(fields, b"MotionPhoto") == b"1" or _camera(fields, b"MicroVideo") == b"1"


def read_motion(path: Path, meta: StillMeta) -> MotionInfo | None:
    """Locate the embedded video of a Motion Photo, or None when the still is not one."""
    fields = xmp_fields(meta.xmp) if meta.xmp else {}
    pts = _int(_camera(fields, b"MotionPhotoPresentationTimestampUs"))
    if pts is None:
        pts = _int(_camera(fields, b"MicroVideoPresentationTimestampUs"))
    if pts is not None and pts < 0:
        pts = None
    if meta.mpvd is not None:
        off, length = meta.mpvd
        if length < 8:
            raise UnreadableFile("empty mpvd box")
        return MotionInfo(off, length, pts, "mpvd")
    with BoundedFile(path) as f:
        if meta.format == "jpeg":
            seft = _read_seft(f)
            if seft is not None:
                return MotionInfo(seft[0], seft[1], pts, "seft")
        motion = _camera(fields, b"MotionPhoto") == b"1"
        micro = _camera(fields, b"MicroVideo") == b"1"
        if not (motion or micro):
            return None
        items = directory_items(meta.xmp or b"")
        video_len = None
        if motion and items:
            # media3: walk items last -> first from EOF; the video is the MotionPhoto item.
            end = f.size
            for item in reversed(items):
                length = _int(item.get(b"Length")) or 0
                padding = _int(item.get(b"Padding")) or 0
                if item.get(b"Semantic") == b"MotionPhoto":
                    video_len = length
                    end_of_video = end
                    break
                end -= length + padding
            else:
                end_of_video = f.size
            if video_len:
                start = end_of_video - video_len
                return _checked(f, start, video_len, pts, "xmp")
        offset = _int(_camera(fields, b"MicroVideoOffset"))
        if offset:
            return _checked(f, f.size - offset, offset, pts, "microvideo")
        raise UnreadableFile("motion photo XMP without a usable video location")


def _checked(f: BoundedFile, start: int, length: int, pts: int | None, source: str) -> MotionInfo:
    if start <= 0 or length < 8 or start + length > f.size:
        raise UnreadableFile("motion photo video range outside the file")
    head = f.read_at(start, 8)
    if head[4:8] not in (b"ftyp", b"moov", b"mdat", b"free", b"wide"):
        raise UnreadableFile("motion photo video does not start with a box")
    return MotionInfo(start, length, pts, source)


def _read_seft(f: BoundedFile) -> tuple[int, int] | None:
    """(offset, length) of the MP4 inside a Samsung SEF trailer, or None when there is none."""
    if f.size < 16:
        return None
    tail = f.read_at(f.size - 8, 8)
    if tail[4:8] != b"SEFT":
        return None
    (dir_len,) = struct.unpack("<I", tail[:4])
    dir_pos = f.size - 8 - dir_len
    if dir_len < 12 or dir_len > 0x10000 or dir_pos < 0:
        raise UnreadableFile("bad Samsung SEF directory length")
    directory = f.read_at(dir_pos, dir_len)
    if directory[:4] != b"SEFH":
        raise UnreadableFile("Samsung SEF directory without SEFH")
    (count,) = struct.unpack_from("<I", directory, 8)
    if count > MAX_SEF_ENTRIES or 12 + 12 * count > dir_len:
        raise UnreadableFile("bad Samsung SEF entry count")
    for i in range(count):
        _, btype, noff, size = struct.unpack_from("<HHII", directory, 12 + 12 * i)
        if btype != SEF_MOTION:
            continue
        start = dir_pos - noff
        if noff > dir_pos or size < 8 or start + size > dir_pos:
            raise UnreadableFile("Samsung SEF entry outside the trailer")
        head = f.read_at(start, 8)
        (name_len,) = struct.unpack_from("<I", head, 4)
        if 8 + name_len > size:
            raise UnreadableFile("Samsung SEF block name past the block")
        data_start = start + 8 + name_len
        return data_start, size - 8 - name_len
    return None
