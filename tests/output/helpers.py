"""Test data built in code: EXIF with a minimal Apple maker note, XMP, an ICC profile."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import numpy as np
from PIL import ImageCms

CID = "ED69AFC7-A2EB-4FE9-88A0-54293FC2478F"
EXIFTOOL = shutil.which("exiftool")
REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "real"

XMP_ORIGINAL = (
    b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
    b'xmlns:tiff="http://ns.adobe.com/tiff/1.0/" '
    b'xmlns:GCamera="http://ns.google.com/photos/1.0/camera/" '
    b'xmp:CreatorTool="13.4.1" xmp:Rating="4" tiff:Orientation="6" '
    b'GCamera:MotionPhoto="1" GCamera:MotionPhotoVersion="1">'
    b'<dc:title xmlns:dc="http://purl.org/dc/elements/1.1/"><rdf:Alt>'
    b'<rdf:li xml:lang="x-default">Beach</rdf:li></rdf:Alt></dc:title>'
    b"</rdf:Description></rdf:RDF></x:xmpmeta>"
    b'<?xpacket end="w"?>'
)


def apple_maker_note(cid: str = CID) -> bytes:
    """ "Apple iOS\\0" + u16 version + "MM" + IFD at byte 14 with tag 0x0011 = the UUID."""
    value = cid.encode("ascii") + b"\x00"
    header = b"Apple iOS\x00" + struct.pack(">H", 1) + b"MM"
    ifd_at = len(header)  # 14
    entries = 2
    data_at = ifd_at + 2 + 12 * entries + 4
    ifd = struct.pack(">H", entries)
    ifd += struct.pack(">HHII", 0x0001, 9, 1, 14)  # MakerNoteVersion (SLONG inline)
    ifd += struct.pack(">HHII", 0x0011, 2, len(value), data_at)
    ifd += struct.pack(">I", 0)
    return header + ifd + value


def build_exif(
    *, width: int, height: int, orientation: int = 6, maker_note: bytes | None = None
) -> bytes:
    """A big-endian TIFF block: IFD0 (Make, Model, Orientation, ExifIFD) + Exif IFD."""
    maker_note = apple_maker_note() if maker_note is None else maker_note
    make, model = b"Apple\x00", b"iPhone 11 Pro\x00"
    ifd0_at = 8
    n0 = 4
    exif_ifd_at = ifd0_at + 2 + 12 * n0 + 4
    n1 = 3
    data_at = exif_ifd_at + 2 + 12 * n1 + 4
    make_at = data_at
    model_at = make_at + len(make)
    note_at = model_at + len(model)
    out = b"MM\x00\x2a" + struct.pack(">I", ifd0_at)
    out += struct.pack(">H", n0)
    out += struct.pack(">HHII", 0x010F, 2, len(make), make_at)
    out += struct.pack(">HHII", 0x0110, 2, len(model), model_at)
    out += struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0)
    out += struct.pack(">HHII", 0x8769, 4, 1, exif_ifd_at)
    out += struct.pack(">I", 0)
    out += struct.pack(">H", n1)
    out += struct.pack(">HHII", 0x927C, 7, len(maker_note), note_at)
    out += struct.pack(">HHIHH", 0xA002, 3, 1, width, 0)
    out += struct.pack(">HHIHH", 0xA003, 3, 1, height, 0)
    out += struct.pack(">I", 0)
    out += make + model + maker_note
    return b"Exif\x00\x00" + out


def display_p3_like_icc() -> bytes:
    """A real ICC profile built in code (sRGB with a distinctive description)."""
    profile = ImageCms.createProfile("sRGB")
    ImageCms.ImageCmsProfile(profile)
    return ImageCms.ImageCmsProfile(profile).tobytes()


def gradient(height: int = 48, width: int = 64) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.stack([x / width, y / height, (x + y) / (width + height)], axis=-1)
