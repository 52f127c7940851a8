"""XMP merging and in-place EXIF patching, on packets and blocks built in code."""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET

import pytest

from daemon.files.xmp import XmpError
from daemon.output import apple_content_identifier, merge_xmp, patch_exif, read_provenance
from daemon.output.exif import ExifFormatError

from .helpers import CID, XMP_ORIGINAL, build_exif

ELEMENT_FORM = b"""<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF
 xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about=""
 xmlns:Camera="http://ns.google.com/photos/1.0/camera/"
 xmlns:exif="http://ns.adobe.com/exif/1.0/"
 xmlns:hdrgm="http://ns.adobe.com/hdr-gain-map/1.0/" hdrgm:Version="1.0">
<Camera:MotionPhoto>1</Camera:MotionPhoto>
<Camera:MotionPhotoPresentationTimestampUs>123</Camera:MotionPhotoPresentationTimestampUs>
<exif:PixelXDimension>4000</exif:PixelXDimension>
<exif:DateTimeOriginal>2024-06-01T10:00:00</exif:DateTimeOriginal>
</rdf:Description></rdf:RDF></x:xmpmeta>"""


def test_merge_keeps_foreign_properties_and_prefixes():
    out = merge_xmp(
        XMP_ORIGINAL,
        provenance={"restorer": "guided"},
        width=10,
        height=8,
        reset_orientation=True,
    )
    assert out is not None
    text = out.decode()
    assert 'xmp:CreatorTool="13.4.1"' in text  # the original prefix, not ns0
    assert "Beach" in text
    assert 'tiff:Orientation="1"' in text
    assert "MotionPhoto" not in text
    assert read_provenance(out) == {"restorer": "guided"}


def test_merge_element_form_and_rerun_does_not_duplicate():
    first = merge_xmp(
        ELEMENT_FORM,
        provenance={"restorer": "a", "sources": {"ref": "1"}},
        width=64,
        height=48,
        reset_orientation=True,
    )
    second = merge_xmp(
        first, provenance={"restorer": "b"}, width=64, height=48, reset_orientation=True
    )
    assert second is not None
    root = ET.fromstring(second.split(b"?>", 1)[1].rsplit(b"<?xpacket", 1)[0])
    text = second.decode()
    assert "MotionPhoto" not in text and "hdrgm" not in text
    assert "<exif:PixelXDimension>64</exif:PixelXDimension>" in text
    assert "2024-06-01T10:00:00" in text
    assert read_provenance(second) == {"restorer": "b"}  # old provenance replaced, not merged
    assert text.count("https://lmd.invalid/ns/1.0/") == 1
    assert root.tag.endswith("xmpmeta")


def test_merge_without_original_and_unparseable():
    assert merge_xmp(None, provenance=None, width=1, height=1, reset_orientation=True) is None
    fresh = merge_xmp(None, provenance={"t1": 1.5}, width=1, height=1, reset_orientation=True)
    assert read_provenance(fresh) == {"t1": "1.5"}
    with pytest.raises(XmpError, match="not well-formed"):
        merge_xmp(b"<x:xmpmeta", provenance=None, width=1, height=1, reset_orientation=True)


def test_patch_exif_is_in_place_and_widens_short():
    exif = build_exif(width=40, height=30, orientation=6)
    out = patch_exif(exif, width=70000, height=30, orientation=1)
    assert len(out) == len(exif)
    changed = [i for i, (a, b) in enumerate(zip(exif, out, strict=True)) if a != b]
    assert changed and max(changed) - min(changed) < 200  # only entry bytes, not the maker note
    assert apple_content_identifier(out) == CID
    from PIL import Image

    parsed = Image.Exif()
    parsed.load(out)
    assert parsed[0x0112] == 1
    assert parsed.get_ifd(0x8769)[0xA002] == 70000


def test_patch_exif_drop_maker_note_zeroes_it():
    exif = build_exif(width=4, height=3)
    out = patch_exif(exif, width=4, height=3, orientation=None, drop_maker_note=True)
    assert apple_content_identifier(out) is None
    assert CID.encode() not in out
    assert b"Apple iOS" not in out


@pytest.mark.parametrize(
    "bad",
    [b"Exif\x00\x00XX\x00*", b"MM\x00\x2b\x00\x00\x00\x08", b"MM\x00*" + struct.pack(">I", 999)],
)
def test_patch_exif_refuses_malformed(bad):
    with pytest.raises(ExifFormatError):
        patch_exif(bad, width=1, height=1, orientation=1)


def test_merge_and_provenance_go_through_the_bounded_reader():
    bomb = (
        b'<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/">&b;</x:xmpmeta>'
    )
    with pytest.raises(XmpError, match="DTD"):
        merge_xmp(bomb, provenance={"t1": 1}, width=1, height=1, reset_orientation=True)
    assert read_provenance(bomb) is None
    # lmd's namespace under a prefix another tool chose is still lmd's provenance.
    other_prefix = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF'
        b' xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description'
        b' xmlns:restored="https://lmd.invalid/ns/1.0/" restored:restorer="guided"/>'
        b"</rdf:RDF></x:xmpmeta>"
    )
    assert read_provenance(other_prefix) == {"restorer": "guided"}
