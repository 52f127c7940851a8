"""Metadata of a still (JPEG or HEIF) read without decoding pixels.

`read_still_meta` returns the raw EXIF (TIFF) block, the XMP packet and, for HEIF, the
top-level `mpvd` box. JPEG reading stops at the first scan (SOS); HEIF reading looks at the
top-level box headers and the `meta` box only. Everything is capped (segment counts, `meta`
size, item and extent counts: `daemon.files.limits`), every segment, box, item and extent
counts against the call's per-file budget (`daemon.files.budget`), and problems become
`UnreadableFile`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from daemon.files import bmff
from daemon.files.binio import BoundedFile, u8, u16be, u32be, u64be
from daemon.files.budget import visit, within_budget
from daemon.files.errors import UnreadableFile
from daemon.files.limits import (
    MAX_EXTENTS,
    MAX_ITEM_BYTES,
    MAX_ITEMS,
    MAX_JPEG_SEGMENTS,
    MAX_META_BYTES,
)

XMP_SIG = b"http://ns.adobe.com/xap/1.0/\x00"
HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif"}


@dataclass(frozen=True, slots=True)
class StillMeta:
    """What discovery needs from a still: EXIF, XMP and (HEIF) the `mpvd` box."""

    format: str  # "jpeg" | "heif"
    exif: bytes | None = None  # bare TIFF block
    xmp: bytes | None = None
    mpvd: tuple[int, int] | None = None  # (payload offset, payload length)


def sniff(head: bytes) -> str | None:
    """'jpeg', 'heif', 'mov' (ISO/QuickTime video) or None, from the first 12+ bytes."""
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return "heif" if head[8:12] in HEIF_BRANDS else "mov"
    if len(head) >= 8 and head[4:8] in (b"wide", b"mdat", b"moov", b"free", b"skip"):
        return "mov"  # AFC-exported Live Photo MOVs can lack ftyp
    return None


@within_budget
def read_still_meta(path: Path) -> StillMeta:
    with BoundedFile(path) as f:
        if f.size < 12:
            raise UnreadableFile("file too short to be an image")
        kind = sniff(f.read_at(0, 12))
        if kind == "jpeg":
            return _read_jpeg(f)
        if kind == "heif":
            return _read_heif(f)
        raise UnreadableFile("not a JPEG or HEIF image")


def _read_jpeg(f: BoundedFile) -> StillMeta:
    from daemon.files.exif import strip_exif_header

    pos = 2
    exif = xmp = None
    for _ in range(MAX_JPEG_SEGMENTS):
        visit("a JPEG segment")
        head = f.read_at(pos, 4)
        if head[0] != 0xFF:
            raise UnreadableFile(f"JPEG marker expected at {pos}")
        marker = head[1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if marker in (0xDA, 0xD9):  # start of scan / end of image: metadata is over
            break
        length = u16be(head, 2)
        if length < 2:
            raise UnreadableFile("JPEG segment length < 2")
        if marker == 0xE1 and length > 8:
            body = f.read_at(pos + 4, length - 2)
            if body.startswith(b"Exif\x00\x00") and exif is None:
                exif = strip_exif_header(body)
            elif body.startswith(XMP_SIG) and xmp is None:
                xmp = body[len(XMP_SIG) :]
        pos += 2 + length
    else:
        raise UnreadableFile(f"more than {MAX_JPEG_SEGMENTS} JPEG segments before the image data")
    return StillMeta("jpeg", exif=exif, xmp=xmp)


def _read_heif(f: BoundedFile) -> StillMeta:
    from daemon.files.exif import strip_exif_header

    meta_box = mpvd = None
    for box in bmff.file_boxes(f):
        if box.type == b"meta" and meta_box is None:
            meta_box = box
        elif box.type == b"mpvd":
            mpvd = (box.payload, box.end - box.payload)
    if meta_box is None:
        raise UnreadableFile("HEIF without a meta box")
    if meta_box.end - meta_box.start > MAX_META_BYTES:
        raise UnreadableFile("HEIF meta box too large")
    data = f.read_at(meta_box.start, meta_box.end - meta_box.start)
    root = bmff.Box(b"meta", 0, meta_box.payload - meta_box.start, len(data))
    items = _items(data, root)
    locs = _locations(data, root)
    _check_extents_in_file(locs, f.size)
    idat = bmff.child(data, root, b"idat", 4)
    exif = xmp = None
    for item_id, (itype, ctype) in items.items():
        if itype == b"Exif" and exif is None:
            exif = strip_exif_header(_item_bytes(f, data, idat, locs.get(item_id)))
        elif itype == b"mime" and b"rdf+xml" in ctype and xmp is None:
            xmp = _item_bytes(f, data, idat, locs.get(item_id))
    return StillMeta("heif", exif=exif, xmp=xmp, mpvd=mpvd)


def _items(data: bytes, meta: bmff.Box) -> dict[int, tuple[bytes, bytes]]:
    """item_id -> (item_type, content_type) from `iinf`."""
    iinf = bmff.child(data, meta, b"iinf", 4)
    if iinf is None:
        raise UnreadableFile("HEIF meta without iinf")
    version = u8(data, iinf.payload)
    skip = 4 + (2 if version == 0 else 4)
    out: dict[int, tuple[bytes, bytes]] = {}
    for infe in bmff.boxes(data, iinf.payload + skip, iinf.end):
        if infe.type != b"infe":
            continue
        p = infe.payload
        v = u8(data, p)
        if v < 2:
            continue
        if v == 2:
            item_id, q = u16be(data, p + 4), p + 8
        else:
            item_id, q = u32be(data, p + 4), p + 10
        itype = data[q : q + 4]
        ctype = b""
        if itype == b"mime":  # item name, then content type, both NUL-terminated
            parts = data[q + 4 : infe.end].split(b"\x00", 2)
            ctype = parts[1] if len(parts) > 1 else b""
        out[item_id] = (itype, ctype)
        if len(out) > MAX_ITEMS:
            raise UnreadableFile(f"more than {MAX_ITEMS} HEIF items")
    return out


def _sized(data: bytes, pos: int, size: int) -> int:
    if size == 0:
        return 0
    if size == 4:
        return u32be(data, pos)
    if size == 8:
        return u64be(data, pos)
    raise UnreadableFile(f"iloc field size {size}")


def _locations(data: bytes, meta: bmff.Box) -> dict[int, tuple[int, list[tuple[int, int]]]]:
    """item_id -> (construction_method, [(offset, length)]) from `iloc`."""
    iloc = bmff.child(data, meta, b"iloc", 4)
    if iloc is None:
        raise UnreadableFile("HEIF meta without iloc")
    p = iloc.payload
    version = u8(data, p)
    if version > 2:
        raise UnreadableFile(f"iloc version {version}")
    sizes = data[p + 4 : p + 6]
    if len(sizes) < 2:
        raise UnreadableFile("truncated iloc")
    off_size, len_size = sizes[0] >> 4, sizes[0] & 15
    base_size, idx_size = sizes[1] >> 4, (sizes[1] & 15 if version else 0)
    q = p + 6
    if version < 2:
        count, q = u16be(data, q), q + 2
    else:
        count, q = u32be(data, q), q + 4
    if count > MAX_ITEMS:
        raise UnreadableFile(f"iloc lists {count} items (at most {MAX_ITEMS})")
    out: dict[int, tuple[int, list[tuple[int, int]]]] = {}
    for _ in range(count):
        visit("a HEIF item location")
        if version < 2:
            item_id, q = u16be(data, q), q + 2
        else:
            item_id, q = u32be(data, q), q + 4
        method = 0
        if version:
            method, q = u16be(data, q) & 15, q + 2
        q += 2  # data_reference_index
        base, q = _sized(data, q, base_size), q + base_size
        n_ext, q = u16be(data, q), q + 2
        if n_ext > MAX_EXTENTS:
            raise UnreadableFile(f"HEIF item {item_id} has {n_ext} extents (at most {MAX_EXTENTS})")
        visit("HEIF item extents", n_ext)
        extents = []
        for _ in range(n_ext):
            q += idx_size
            off, q = _sized(data, q, off_size), q + off_size
            length, q = _sized(data, q, len_size), q + len_size
            extents.append((base + off, length))
        out[item_id] = (method, extents)
        if q > iloc.end:
            raise UnreadableFile("iloc entries past the box end")
    return out


def _check_extents_in_file(
    locs: dict[int, tuple[int, list[tuple[int, int]]]], file_size: int
) -> None:
    """A HEIF cut short (an interrupted copy) keeps its `meta` box, and libheif then decodes
    the image tiles that are still there without complaint: refuse it here, where `iloc` says
    where every item's bytes must be. (A length of 0 means "to the end of the file".)"""
    for item_id, (method, extents) in locs.items():
        if method != 0:
            continue
        for offset, length in extents:
            if offset > file_size or offset + length > file_size:
                raise UnreadableFile(
                    f"truncated file: item {item_id} needs bytes up to {offset + length}, "
                    f"the file has {file_size}"
                )


def _item_bytes(
    f: BoundedFile,
    meta: bytes,
    idat: bmff.Box | None,
    loc: tuple[int, list[tuple[int, int]]] | None,
) -> bytes:
    if loc is None:
        raise UnreadableFile("HEIF item without a location")
    method, extents = loc
    total = sum(length for _, length in extents)
    if total > MAX_ITEM_BYTES:
        raise UnreadableFile("HEIF metadata item too large")
    out = bytearray()
    for off, length in extents:
        if method == 0:
            out += f.read_at(off, length)
        elif method == 1 and idat is not None:
            if idat.payload + off + length > idat.end:
                raise UnreadableFile("idat extent past the box end")
            out += meta[idat.payload + off : idat.payload + off + length]
        else:
            raise UnreadableFile(f"unsupported iloc construction method {method}")
    return bytes(out)
