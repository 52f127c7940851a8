"""Android Motion Photos: where the embedded video is and what its key time is.

Sources, in the order trusted (formats page 2): a HEIF top-level `mpvd` box; a Samsung SEF
trailer (`MotionPhoto_Data`, whose XMP values are often nonsense); Google Motion Photo XMP
(the Camera namespace, written with the `Camera` or legacy `GCamera` prefix; the Container
directory walked backwards from EOF as media3 does) and legacy `MicroVideoOffset`. The XMP
goes through the one reader, `daemon.files.xmp` (namespace URIs, size/depth/entity limits);
a packet that never names a Motion Photo property is not parsed at all, so ordinary photos
with large or odd XMP cost a substring search and nothing more. The Container directory is
walked once, each node counted against the call's per-file budget (`daemon.files.budget`;
limits in `daemon.files.limits`), so nested directories cannot multiply the walk.
"""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from daemon.files import xmp
from daemon.files.binio import BoundedFile
from daemon.files.budget import visit, within_budget
from daemon.files.errors import UnreadableFile
from daemon.files.limits import MAX_DIRECTORY_ITEMS, MAX_SEF_DIRECTORY_BYTES, MAX_SEF_ENTRIES
from daemon.library.stills import StillMeta

SEF_MOTION = 0x0A30
CAMERA_NS = "http://ns.google.com/photos/1.0/camera/"
CONTAINER_NS = "http://ns.google.com/photos/1.0/container/"
ITEM_NS = "http://ns.google.com/photos/1.0/container/item/"
_MARKERS = (b"MotionPhoto", b"MicroVideo")


@dataclass(frozen=True, slots=True)
class MotionInfo:
    video_offset: int
    video_length: int
    presentation_us: int | None  # None when unset (-1) or absent
    source: str  # "mpvd" | "seft" | "xmp" | "microvideo"


@dataclass(frozen=True, slots=True)
class MotionXmp:
    """The Motion Photo part of an XMP packet: Camera-namespace fields and directory items."""

    camera: dict[str, str] = field(default_factory=dict)
    items: list[dict[str, str]] = field(default_factory=list)

    @property
    def is_motion(self) -> bool:
        return self.camera.get("MotionPhoto") == "1" or self.camera.get("MicroVideo") == "1"


@within_budget
def read_motion_xmp(packet: bytes | None) -> MotionXmp:
    """Motion Photo fields of a packet (empty when it names none); `UnreadableFile` (with the
    reader's reason) when a packet that names them is refused or malformed."""
    if not packet or not any(marker in packet for marker in _MARKERS):
        return MotionXmp()
    root = xmp.parse_packet(packet).root
    camera = {local: v for (ns, local), v in xmp.properties(root).items() if ns == CAMERA_NS}
    return MotionXmp(camera, directory_items(root))


def directory_items(root: ET.Element) -> list[dict[str, str]]:
    """The Container directory items, each as {Mime, Semantic, Length, Padding}, written either
    as `Container:Item` resources or as `Item:` fields on the `rdf:li` itself.

    Every directory and entry visited counts against the per-file budget: directories nested in
    directories would otherwise walk the same entries once per level."""
    items: list[dict[str, str]] = []
    for directory in root.iter(f"{{{CONTAINER_NS}}}Directory"):
        visit("a Container directory")
        for li in directory.iter(f"{{{xmp.RDF_NS}}}li"):
            visit("a Container directory entry")
            item = xmp.resource_fields(li, ITEM_NS)
            for node in li.iter(f"{{{CONTAINER_NS}}}Item"):
                item = xmp.resource_fields(node, ITEM_NS) or item
                break
            if item:
                items.append(item)
            if len(items) > MAX_DIRECTORY_ITEMS:
                raise UnreadableFile(f"more than {MAX_DIRECTORY_ITEMS} Container items")
    return items


def is_motion_xmp(packet: bytes | None) -> bool:
    return read_motion_xmp(packet).is_motion


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


@within_budget
def read_motion(path: Path, meta: StillMeta) -> MotionInfo | None:
    """Locate the embedded video of a Motion Photo, or None when the still is not one."""
    found = read_motion_xmp(meta.xmp)
    camera = found.camera
    pts = _int(camera.get("MotionPhotoPresentationTimestampUs"))
    if pts is None:
        pts = _int(camera.get("MicroVideoPresentationTimestampUs"))
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
        motion = camera.get("MotionPhoto") == "1"
        micro = camera.get("MicroVideo") == "1"
        if not (motion or micro):
            return None
        video_len = None
        if motion and found.items:
            # media3: walk items last -> first from EOF; the video is the MotionPhoto item.
            end = f.size
            for item in reversed(found.items):
                length = _int(item.get("Length")) or 0
                padding = _int(item.get("Padding")) or 0
                if item.get("Semantic") == "MotionPhoto":
                    video_len = length
                    end_of_video = end
                    break
                end -= length + padding
            else:
                end_of_video = f.size
            if video_len:
                start = end_of_video - video_len
                return _checked(f, start, video_len, pts, "xmp")
        offset = _int(camera.get("MicroVideoOffset"))
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
    if dir_len < 12 or dir_len > MAX_SEF_DIRECTORY_BYTES or dir_pos < 0:
        raise UnreadableFile("bad Samsung SEF directory length")
    directory = f.read_at(dir_pos, dir_len)
    if directory[:4] != b"SEFH":
        raise UnreadableFile("Samsung SEF directory without SEFH")
    (count,) = struct.unpack_from("<I", directory, 8)
    if count > MAX_SEF_ENTRIES or 12 + 12 * count > dir_len:
        raise UnreadableFile(f"Samsung SEF directory lists {count} entries")
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
