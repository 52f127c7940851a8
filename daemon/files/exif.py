"""EXIF (TIFF) structure: the one IFD walker, and what lmd reads through it.

Why our own walker: exifread truncates the Apple maker-note tag 0x0011 and piexif cannot open
HEIC; running exiftool per file is far too slow for a library scan. Discovery reads the Apple
MakerNote ContentIdentifier and the Orientation through `Tiff`, and `daemon.output.exif` patches
values in place through the same entries (so offsets and type sizes are decoded in one place).
The Apple maker note is `"Apple iOS\\0" + u16 version + "MM"` with its IFD at byte 14 and
offsets relative to the maker-note start (formats page, section 1.1).

Bounds: every read is checked against the block, an IFD has at most `MAX_IFD_ENTRIES`
entries, every IFD entry read counts against the reader call's per-file budget
(`daemon.files.budget`), and an entry whose value lies outside the block is skipped by `value`
(others may still be fine); problems are `UnreadableFile`.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from daemon.files import budget
from daemon.files.errors import UnreadableFile
from daemon.files.limits import MAX_IFD_ENTRIES

EXIF_HEADER = b"Exif\x00\x00"
TAG_IMAGE_WIDTH = 0x0100
TAG_IMAGE_LENGTH = 0x0101
TAG_MAKE = 0x010F
TAG_MODEL = 0x0110
TAG_ORIENTATION = 0x0112
TAG_EXIF_IFD = 0x8769
TAG_MAKER_NOTE = 0x927C
TAG_PIXEL_X = 0xA002
TAG_PIXEL_Y = 0xA003
APPLE_CONTENT_IDENTIFIER = 0x0011
APPLE_PREFIX = b"Apple iOS\x00"
SHORT = 3
LONG = 4
#: Bytes per value of each TIFF field type (BYTE, ASCII, SHORT, LONG, RATIONAL, ...).
TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
_UUID = re.compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")


@dataclass(frozen=True, slots=True)
class Entry:
    """One 12-byte IFD entry: where it is in the block, and its tag, type and count."""

    pos: int
    tag: int
    type: int
    count: int

    @property
    def size(self) -> int:
        """Bytes of the value (inline in the entry when at most 4)."""
        return TYPE_SIZES.get(self.type, 1) * self.count


class Tiff:
    """A TIFF block (an EXIF payload) or a bare IFD blob such as a maker note.

    `data` may be a `bytearray` that a patcher edits through `buf`; `byte_order` ('<' or '>')
    is given for a bare IFD blob, otherwise read from the TIFF header.
    """

    def __init__(self, data: bytes | bytearray, byte_order: str | None = None) -> None:
        self.buf = data
        self.ifd0 = 0
        if byte_order is not None:
            self.bo = byte_order
            return
        if len(data) < 8:
            raise UnreadableFile("EXIF too short")
        order = bytes(data[:2])
        if order == b"MM":
            self.bo = ">"
        elif order == b"II":
            self.bo = "<"
        else:
            raise UnreadableFile("EXIF without a TIFF header")
        if self.u16(2) != 42:
            raise UnreadableFile("EXIF TIFF magic is not 42")
        self.ifd0 = self.u32(4)

    def check(self, pos: int, size: int) -> None:
        if pos < 0 or size < 0 or pos + size > len(self.buf):
            raise UnreadableFile(f"EXIF offset {pos}+{size} is outside the block")

    def u16(self, pos: int) -> int:
        self.check(pos, 2)
        return struct.unpack_from(self.bo + "H", self.buf, pos)[0]

    def u32(self, pos: int) -> int:
        self.check(pos, 4)
        return struct.unpack_from(self.bo + "I", self.buf, pos)[0]

    def entries(self, ifd: int) -> list[Entry]:
        """The entries of the IFD at `ifd` (its next-IFD pointer is not required)."""
        count = self.u16(ifd)
        if count > MAX_IFD_ENTRIES:
            raise UnreadableFile(f"IFD has {count} entries (at most {MAX_IFD_ENTRIES})")
        self.check(ifd + 2, 12 * count)
        budget.visit("IFD entries", count)
        unpack = struct.Struct(self.bo + "HHI").unpack_from
        out = []
        for i in range(count):
            pos = ifd + 2 + 12 * i
            tag, typ, n = unpack(self.buf, pos)
            out.append(Entry(pos, tag, typ, n))
        return out

    def find(self, ifd: int, tag: int) -> Entry | None:
        return next((e for e in self.entries(ifd) if e.tag == tag), None)

    def value_offset(self, entry: Entry) -> int:
        """Where the entry's value starts: inside the entry, or at the offset it holds."""
        return entry.pos + 8 if entry.size <= 4 else self.u32(entry.pos + 8)

    def value(self, entry: Entry) -> bytes | None:
        """The entry's raw value bytes; None when they lie outside the block."""
        at, size = self.value_offset(entry), entry.size
        if at + size > len(self.buf):
            return None
        return bytes(self.buf[at : at + size])

    def sub_ifd(self, ifd: int, tag: int) -> int | None:
        """Offset of the IFD a pointer tag (e.g. the EXIF IFD) names, or None."""
        entry = self.find(ifd, tag)
        raw = self.value(entry) if entry is not None else None
        if raw is None or len(raw) < 4:
            return None
        return struct.unpack_from(self.bo + "I", raw, 0)[0]


def strip_exif_header(block: bytes) -> bytes:
    """Accept `Exif\\0\\0`-prefixed, HEIF-offset-prefixed or bare TIFF blocks."""
    if block.startswith(EXIF_HEADER):
        return block[6:]
    if block[:2] in (b"MM", b"II"):
        return block
    if len(block) >= 4:
        skip = struct.unpack_from(">I", block, 0)[0]
        if 4 + skip <= len(block):
            rest = block[4 + skip :]
            return rest[6:] if rest.startswith(EXIF_HEADER) else rest
    raise UnreadableFile("unrecognised EXIF block")


@budget.within_budget
def maker_note(tiff: bytes) -> bytes | None:
    """The raw MakerNote bytes of a TIFF/EXIF block, or None."""
    t = Tiff(tiff)
    exif_ifd = t.sub_ifd(t.ifd0, TAG_EXIF_IFD)
    if exif_ifd is None:
        return None
    entry = t.find(exif_ifd, TAG_MAKER_NOTE)
    return t.value(entry) if entry is not None else None


@budget.within_budget
def orientation(tiff: bytes) -> int:
    """EXIF Orientation (1..8), 1 when absent or odd."""
    t = Tiff(tiff)
    entry = t.find(t.ifd0, TAG_ORIENTATION)
    raw = t.value(entry) if entry is not None else None
    if raw is None or len(raw) < 2:
        return 1
    (value,) = struct.unpack_from(t.bo + "H", raw, 0)
    return value if 1 <= value <= 8 else 1


@budget.within_budget
def apple_content_identifier(tiff: bytes) -> str | None:
    """ContentIdentifier (Apple maker-note tag 0x0011) of a TIFF block, or None."""
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
    t = Tiff(note, endian)
    entry = t.find(14, APPLE_CONTENT_IDENTIFIER)
    raw = t.value(entry) if entry is not None else None
    if raw is None:
        return None
    value = raw.split(b"\x00", 1)[0].decode("ascii", "replace").strip()
    return value.upper() if _UUID.match(value) else (value or None)


def build_apple_exif(content_id: str, *, orientation_value: int = 1) -> bytes:
    """A big-endian TIFF block with Make/Model, Orientation and an Apple maker note.

    Used by the fixture builders (`daemon.library.synth`), kept here beside the walker it must
    satisfy.
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
        + struct.pack(">HHII", TAG_MAKE, 2, len(make), make_off)
        + struct.pack(">HHII", TAG_MODEL, 2, len(model), model_off)
        + struct.pack(">HHIHH", TAG_ORIENTATION, SHORT, 1, orientation_value, 0)
        + struct.pack(">HHII", TAG_EXIF_IFD, LONG, 1, exif_ifd_off)
        + b"\x00\x00\x00\x00"
    )
    exif_ifd = struct.pack(">H", 1) + struct.pack(">HHII", TAG_MAKER_NOTE, 7, len(note), note_off)
    exif_ifd += b"\x00\x00\x00\x00"
    return b"MM\x00\x2a" + struct.pack(">I", ifd0_off) + ifd0 + make + model + exif_ifd + note
