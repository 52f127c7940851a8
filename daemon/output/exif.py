"""Patch an EXIF (TIFF) block in place, so every byte we do not mean to change stays verbatim.

Why in place rather than re-serialising with Pillow: maker notes are opaque blobs and some
vendors' notes use offsets relative to the TIFF header, which a re-serialiser that moves the blob
silently breaks. Apple's maker note (ContentIdentifier, tag 0x0011, which pairs a still with its
MOV) is self-relative, but keeping *all* offsets where they were is the only rule that is safe for
every phone. We only overwrite fixed-size inline values (Orientation, the pixel dimensions) and,
when asked, drop the maker-note entry from its IFD.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

EXIF_HEADER = b"Exif\x00\x00"

TAG_IMAGE_WIDTH = 0x0100
TAG_IMAGE_LENGTH = 0x0101
TAG_ORIENTATION = 0x0112
TAG_EXIF_IFD = 0x8769
TAG_MAKER_NOTE = 0x927C
TAG_PIXEL_X = 0xA002
TAG_PIXEL_Y = 0xA003

_SHORT = 3
_LONG = 4
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}


class ExifFormatError(ValueError):
    """The EXIF block is not a TIFF structure we can patch safely."""


@dataclass(frozen=True, slots=True)
class _Entry:
    pos: int  # offset of the 12-byte entry inside the TIFF block
    tag: int
    type: int
    count: int


def split_header(exif: bytes) -> tuple[bytes, bytes]:
    """(prefix, tiff) where prefix is b"Exif\\0\\0" or b"" as found."""
    if exif.startswith(EXIF_HEADER):
        return EXIF_HEADER, exif[len(EXIF_HEADER) :]
    return b"", exif


class _Tiff:
    def __init__(self, data: bytes, byte_order: str | None = None) -> None:
        self.buf = bytearray(data)
        self.ifd0 = 0
        if byte_order is not None:  # a bare IFD blob such as a maker note
            self.bo = byte_order
            return
        order = bytes(self.buf[:2])
        if order == b"II":
            self.bo = "<"
        elif order == b"MM":
            self.bo = ">"
        else:
            raise ExifFormatError("EXIF does not start with a TIFF byte-order mark")
        if self._u16(2) != 42:
            raise ExifFormatError("EXIF TIFF magic number is not 42")
        self.ifd0 = self._u32(4)

    def _check(self, pos: int, size: int) -> None:
        if pos < 0 or pos + size > len(self.buf):
            raise ExifFormatError(f"EXIF offset {pos}+{size} is outside the block")

    def _u16(self, pos: int) -> int:
        self._check(pos, 2)
        return struct.unpack_from(self.bo + "H", self.buf, pos)[0]

    def _u32(self, pos: int) -> int:
        self._check(pos, 4)
        return struct.unpack_from(self.bo + "I", self.buf, pos)[0]

    def entries(self, ifd: int) -> list[_Entry]:
        count = self._u16(ifd)
        self._check(ifd + 2, count * 12 + 4)
        out = []
        for i in range(count):
            pos = ifd + 2 + 12 * i
            out.append(_Entry(pos, self._u16(pos), self._u16(pos + 2), self._u32(pos + 4)))
        return out

    def find(self, ifd: int, tag: int) -> _Entry | None:
        return next((e for e in self.entries(ifd) if e.tag == tag), None)

    def set_int(self, entry: _Entry, value: int) -> None:
        """Overwrite a one-value SHORT/LONG in place (SHORT widens to LONG when needed)."""
        if entry.count != 1 or entry.type not in (_SHORT, _LONG):
            raise ExifFormatError(f"tag 0x{entry.tag:04x} is not a single SHORT/LONG")
        if entry.type == _SHORT and value <= 0xFFFF:
            struct.pack_into(self.bo + "HH", self.buf, entry.pos + 8, value, 0)
        else:
            struct.pack_into(self.bo + "HII", self.buf, entry.pos + 2, _LONG, 1, value)

    def remove(self, ifd: int, entry: _Entry) -> None:
        """Drop an entry: shift the later entries up, zero its out-of-line data."""
        size = _TYPE_SIZES.get(entry.type, 1) * entry.count
        if size > 4:
            data_at = self._u32(entry.pos + 8)
            self._check(data_at, size)
            self.buf[data_at : data_at + size] = bytes(size)
        count = self._u16(ifd)
        end = ifd + 2 + 12 * count + 4  # entries + next-IFD offset
        self.buf[entry.pos : end - 12] = self.buf[entry.pos + 12 : end]
        self.buf[end - 12 : end] = bytes(12)
        struct.pack_into(self.bo + "H", self.buf, ifd, count - 1)


def patch_exif(
    exif: bytes,
    *,
    width: int,
    height: int,
    orientation: int | None,
    drop_maker_note: bool = False,
) -> bytes:
    """Return `exif` with dimensions fixed, Orientation set (unless None), maker note dropped.

    Accepts and returns the same framing (with or without the b"Exif\\0\\0" prefix). Raises
    `ExifFormatError` when the block is malformed: writing a photo whose orientation we could not
    fix would show it rotated, so the caller fails the write instead of guessing.
    """
    prefix, data = split_header(exif)
    tiff = _Tiff(data)
    ifd0 = tiff.ifd0
    for tag, value in ((TAG_IMAGE_WIDTH, width), (TAG_IMAGE_LENGTH, height)):
        entry = tiff.find(ifd0, tag)
        if entry is not None:
            tiff.set_int(entry, value)
    if orientation is not None:
        entry = tiff.find(ifd0, TAG_ORIENTATION)
        if entry is not None:
            tiff.set_int(entry, orientation)
    pointer = tiff.find(ifd0, TAG_EXIF_IFD)
    if pointer is not None:
        exif_ifd = tiff._u32(pointer.pos + 8)
        for tag, value in ((TAG_PIXEL_X, width), (TAG_PIXEL_Y, height)):
            entry = tiff.find(exif_ifd, tag)
            if entry is not None:
                tiff.set_int(entry, value)
        if drop_maker_note:
            entry = tiff.find(exif_ifd, TAG_MAKER_NOTE)
            if entry is not None:
                tiff.remove(exif_ifd, entry)
    return prefix + bytes(tiff.buf)


def apple_content_identifier(exif: bytes) -> str | None:
    """The Apple maker note's ContentIdentifier (tag 0x0011) of an EXIF block, or None.

    Used to check that a written file still pairs with its MOV. Maker-note parsing has one
    home, discovery's bounded reader; this only accepts the header forms writers produce.
    """
    from daemon.library.errors import UnreadableFile
    from daemon.library.exif import apple_content_identifier as read_content_identifier
    from daemon.library.exif import strip_exif_header

    try:
        return read_content_identifier(strip_exif_header(exif))
    except UnreadableFile:
        return None

