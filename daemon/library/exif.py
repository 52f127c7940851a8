"""Minimal EXIF (TIFF) reading: the Apple MakerNote ContentIdentifier, and nothing else.

Why our own ~80 lines: exifread truncates tag 0x0011 and piexif cannot open HEIC; running
exiftool per file is far too slow for a library scan. The Apple maker note is
`"Apple iOS\\0" + u16 version + "MM"` with its IFD at byte 14 and offsets relative to the
maker-note start (see the formats page, section 1.1).
"""

from __future__ import annotations

import re
import struct

from daemon.library.errors import UnreadableFile

EXIF_IFD = 0x8769
MAKER_NOTE = 0x927C
APPLE_CONTENT_IDENTIFIER = 0x0011
MAX_IFD_ENTRIES = 512
APPLE_PREFIX = b"Apple iOS\x00"
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
_UUID = re.compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")


def _ifd(data: bytes, offset: int, endian: str) -> dict[int, tuple[int, int, bytes]]:
    """Entries of one IFD: tag -> (type, count, raw value bytes), offsets resolved in `data`."""
    if offset < 0 or offset + 2 > len(data):
        raise UnreadableFile("IFD offset past the end of EXIF")
    (count,) = struct.unpack_from(endian + "H", data, offset)
    if count > MAX_IFD_ENTRIES:
        raise UnreadableFile(f"IFD has {count} entries")
    if offset + 2 + 12 * count > len(data):
        raise UnreadableFile("IFD entries past the end of EXIF")
    out: dict[int, tuple[int, int, bytes]] = {}
    for i in range(count):
        pos = offset + 2 + 12 * i
        tag, typ, n = struct.unpack_from(endian + "HHI", data, pos)
        size = _TYPE_SIZES.get(typ, 1) * n
        if size <= 4:
            raw = data[pos + 8 : pos + 8 + size]
        else:
            (voff,) = struct.unpack_from(endian + "I", data, pos + 8)
            if voff + size > len(data):
                continue  # a broken entry; others may still be fine
            raw = data[voff : voff + size]
        out[tag] = (typ, n, raw)
    return out


def _tiff_header(data: bytes) -> tuple[str, int]:
    if len(data) < 8:
        raise UnreadableFile("EXIF too short")
    if data[:2] == b"MM":
        endian = ">"
    elif data[:2] == b"II":
        endian = "<"
    else:
        raise UnreadableFile("EXIF without a TIFF header")
    magic, first = struct.unpack_from(endian + "HI", data, 2)
    if magic != 42:
        raise UnreadableFile("EXIF TIFF magic is not 42")
    return endian, first


def maker_note(tiff: bytes) -> bytes | None:
    """The raw MakerNote bytes of a TIFF/EXIF block, or None."""
    endian, first = _tiff_header(tiff)
    ifd0 = _ifd(tiff, first, endian)
    sub = ifd0.get(EXIF_IFD)
    if sub is None or len(sub[2]) < 4:
        return None
    (exif_off,) = struct.unpack_from(endian + "I", sub[2], 0)
    entry = _ifd(tiff, exif_off, endian).get(MAKER_NOTE)
    return entry[2] if entry else None


def orientation(tiff: bytes) -> int:
    """EXIF Orientation (1..8), 1 when absent or odd."""
    endian, first = _tiff_header(tiff)
    entry = _ifd(tiff, first, endian).get(0x0112)
    if entry is None or len(entry[2]) < 2:
        return 1
    (value,) = struct.unpack_from(endian + "H", entry[2], 0)
    return value if 1 <= value <= 8 else 1


def apple_content_identifier(tiff: bytes) -> str | None:
    """ContentIdentifier (Apple maker-note tag 0x0011) of an EXIF block, or None."""
    note = maker_note(tiff)
    if note is None or not note.startswith(APPLE_PREFIX) or len(note) < 16:
        return None
    order = note[12:14]
    if order == b"MM":
        endian = ">"
    elif order == b"II":
        endian = "<"
    else:
        raise UnreadableFile("Apple maker note without a byte order")
    entry = _ifd(note, 14, endian).get(APPLE_CONTENT_IDENTIFIER)
    if entry is None:
        return None
    value = entry[2].split(b"\x00", 1)[0].decode("ascii", "replace").strip()
    return value.upper() if _UUID.match(value) else (value or None)


def strip_exif_header(block: bytes) -> bytes:
    """Accept `Exif\\0\\0`-prefixed, HEIF-offset-prefixed or bare TIFF blocks."""
    if block.startswith(b"Exif\x00\x00"):
        return block[6:]
    if block[:2] in (b"MM", b"II"):
        return block
    if len(block) >= 4:
        skip = struct.unpack_from(">I", block, 0)[0]
        if 4 + skip <= len(block):
            rest = block[4 + skip :]
            return rest[6:] if rest.startswith(b"Exif\x00\x00") else rest
    raise UnreadableFile("unrecognised EXIF block")


def build_apple_exif(content_id: str, *, orientation_value: int = 1) -> bytes:
    """A big-endian TIFF block with Make/Model, Orientation and an Apple maker note.

    Used by the fixture builders (`synth`), kept here beside the parser it must satisfy.
    """
    cid = content_id.encode("ascii") + b"\x00"
    # Apple maker note: prefix, version 1, "MM", IFD at 14 with one entry (0x0011 string).
    mn_ifd_off = 14
    mn_val_off = mn_ifd_off + 2 + 12 + 4
    note = (
        APPLE_PREFIX
        + b"\x00\x01MM"
        + struct.pack(">H", 1)
        + struct.pack(">HHII", APPLE_CONTENT_IDENTIFIER, 2, len(cid), mn_val_off)
        + b"\x00\x00\x00\x00"
        + cid
    )
    make, model = b"Apple\x00", b"iPhone 11 Pro\x00"
    ifd0_off = 8
    ifd0_len = 2 + 12 * 4 + 4
    make_off = ifd0_off + ifd0_len
    model_off = make_off + len(make)
    exif_ifd_off = model_off + len(model)
    exif_ifd_len = 2 + 12 + 4
    note_off = exif_ifd_off + exif_ifd_len
    ifd0 = (
        struct.pack(">H", 4)
        + struct.pack(">HHII", 0x010F, 2, len(make), make_off)
        + struct.pack(">HHII", 0x0110, 2, len(model), model_off)
        + struct.pack(">HHIHH", 0x0112, 3, 1, orientation_value, 0)
        + struct.pack(">HHII", EXIF_IFD, 4, 1, exif_ifd_off)
        + b"\x00\x00\x00\x00"
    )
    exif_ifd = struct.pack(">H", 1) + struct.pack(">HHII", MAKER_NOTE, 7, len(note), note_off)
    exif_ifd += b"\x00\x00\x00\x00"
    return b"MM\x00\x2a" + struct.pack(">I", ifd0_off) + ifd0 + make + model + exif_ifd + note
