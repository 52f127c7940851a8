"""Patch an EXIF (TIFF) block in place, so every byte we do not mean to change stays verbatim.

Why in place rather than re-serialising with Pillow: maker notes are opaque blobs and some
vendors' notes use offsets relative to the TIFF header, which a re-serialiser that moves the blob
silently breaks. Apple's maker note (ContentIdentifier, tag 0x0011, which pairs a still with its
MOV) is self-relative, but keeping *all* offsets where they were is the only rule that is safe for
every phone. We only overwrite fixed-size inline values (Orientation, the pixel dimensions) and,
when asked, drop the maker-note entry from its IFD. The IFD walker (offsets, type sizes, bounds)
is `daemon.files.exif.Tiff`, the one discovery reads with.
"""

from __future__ import annotations

import struct

from daemon.files.errors import UnreadableFile
from daemon.files.exif import (
    EXIF_HEADER,
    LONG,
    SHORT,
    TAG_EXIF_IFD,
    TAG_IMAGE_LENGTH,
    TAG_IMAGE_WIDTH,
    TAG_MAKER_NOTE,
    TAG_ORIENTATION,
    TAG_PIXEL_X,
    TAG_PIXEL_Y,
    Entry,
    Tiff,
    strip_exif_header,
)
from daemon.files.exif import apple_content_identifier as _read_content_identifier


class ExifFormatError(ValueError):
    """The EXIF block is not a TIFF structure we can patch safely."""


def split_header(exif: bytes) -> tuple[bytes, bytes]:
    """(prefix, tiff) where prefix is b"Exif\\0\\0" or b"" as found."""
    if exif.startswith(EXIF_HEADER):
        return EXIF_HEADER, exif[len(EXIF_HEADER) :]
    return b"", exif


def _set_int(tiff: Tiff, entry: Entry, value: int) -> None:
    """Overwrite a one-value SHORT/LONG in place (SHORT widens to LONG when needed)."""
    if entry.count != 1 or entry.type not in (SHORT, LONG):
        raise ExifFormatError(f"tag 0x{entry.tag:04x} is not a single SHORT/LONG")
    if entry.type == SHORT and value <= 0xFFFF:
        struct.pack_into(tiff.bo + "HH", tiff.buf, entry.pos + 8, value, 0)
    else:
        struct.pack_into(tiff.bo + "HII", tiff.buf, entry.pos + 2, LONG, 1, value)


def _remove(tiff: Tiff, ifd: int, entry: Entry) -> None:
    """Drop an entry: shift the later entries up, zero its out-of-line data."""
    buf = tiff.buf
    assert isinstance(buf, bytearray)
    if entry.size > 4:
        data_at = tiff.value_offset(entry)
        tiff.check(data_at, entry.size)
        buf[data_at : data_at + entry.size] = bytes(entry.size)
    count = tiff.u16(ifd)
    end = ifd + 2 + 12 * count + 4  # entries + next-IFD offset
    tiff.check(ifd, end - ifd)
    buf[entry.pos : end - 12] = buf[entry.pos + 12 : end]
    buf[end - 12 : end] = bytes(12)
    struct.pack_into(tiff.bo + "H", buf, ifd, count - 1)


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
    try:
        tiff = Tiff(bytearray(data))
        _patch(tiff, width, height, orientation, drop_maker_note)
    except UnreadableFile as exc:
        raise ExifFormatError(exc.reason) from None
    return prefix + bytes(tiff.buf)


def _patch(
    tiff: Tiff, width: int, height: int, orientation: int | None, drop_maker_note: bool
) -> None:
    ifd0 = tiff.ifd0
    for tag, value in ((TAG_IMAGE_WIDTH, width), (TAG_IMAGE_LENGTH, height)):
        entry = tiff.find(ifd0, tag)
        if entry is not None:
            _set_int(tiff, entry, value)
    if orientation is not None:
        entry = tiff.find(ifd0, TAG_ORIENTATION)
        if entry is not None:
            _set_int(tiff, entry, orientation)
    pointer = tiff.find(ifd0, TAG_EXIF_IFD)
    if pointer is not None:
        exif_ifd = tiff.u32(pointer.pos + 8)
        for tag, value in ((TAG_PIXEL_X, width), (TAG_PIXEL_Y, height)):
            entry = tiff.find(exif_ifd, tag)
            if entry is not None:
                _set_int(tiff, entry, value)
        if drop_maker_note:
            entry = tiff.find(exif_ifd, TAG_MAKER_NOTE)
            if entry is not None:
                _remove(tiff, exif_ifd, entry)


def apple_content_identifier(exif: bytes) -> str | None:
    """The Apple maker note's ContentIdentifier (tag 0x0011) of an EXIF block, or None.

    Used to check that a written file still pairs with its MOV, through the same walker as
    discovery (`daemon.files.exif`); a block it cannot read has no identifier.
    """
    try:
        return _read_content_identifier(strip_exif_header(exif))
    except UnreadableFile:
        return None
