"""The one XMP reader (`daemon.files.xmp`) on hostile and unusual packets.

Linear time is shown by results, not clocks: a 1 MB packet inside a HEIC is read to its last
field (the old prefix regex needed hours for that), a bigger one is refused by the size limit,
and entity, depth and element bombs are refused with their reason before they cost anything.
"""

from __future__ import annotations

import io
import string
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from daemon.files import bmff, xmp
from daemon.files.errors import UnreadableFile
from daemon.library import motion
from daemon.library.stills import read_still_meta

CAMERA = motion.CAMERA_NS
RDF = xmp.RDF_NS


def packet(body: str, *, camera_prefix: str = "GCamera", attrs: str = "") -> bytes:
    return (
        f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="{RDF}">'
        f'<rdf:Description rdf:about="" xmlns:{camera_prefix}="{CAMERA}" {attrs}>'
        f"{body}</rdf:Description></rdf:RDF></x:xmpmeta>"
    ).encode()


def big_motion_packet(size: int, pts: int) -> bytes:
    """A Motion Photo packet padded to about `size` bytes with keywords, whose timestamp is the
    last property of the packet (so reading it means the whole packet was parsed)."""
    keyword = "<rdf:li>holiday-keyword-{:06d}</rdf:li>"
    count = size // len(keyword.format(0))
    subjects = "".join(keyword.format(i) for i in range(count))
    body = (
        '<dc:subject xmlns:dc="http://purl.org/dc/elements/1.1/"><rdf:Bag>'
        f"{subjects}</rdf:Bag></dc:subject>"
        "<GCamera:MotionPhoto>1</GCamera:MotionPhoto>"
        f"<GCamera:MotionPhotoPresentationTimestampUs>{pts}</GCamera:MotionPhotoPresentationTimestampUs>"
    )
    return packet(body)


def heic_with_xmp(path: Path, xmp_packet: bytes, video: bytes) -> Path:
    """A HEIC Motion Photo: the packet as its XMP item and `video` in a top-level mpvd box."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    buf = io.BytesIO()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(buf, format="HEIF", xmp=xmp_packet)
    path.write_bytes(buf.getvalue() + bmff.box(b"mpvd", video))
    return path


def test_a_1mb_packet_in_a_heic_is_read_to_its_last_field(tmp_path: Path) -> None:
    big = big_motion_packet(1024 * 1024, pts=733_000)
    assert len(big) >= 1024 * 1024
    path = heic_with_xmp(tmp_path / "PXL_1.MP.heic", big, b"\x00\x00\x00\x08free" * 4)
    meta = read_still_meta(path)
    assert meta.xmp is not None and len(meta.xmp) >= 1024 * 1024
    found = motion.read_motion(path, meta)
    assert found is not None and found.source == "mpvd"
    assert found.presentation_us == 733_000


def test_a_packet_over_the_size_limit_is_refused_with_its_reason(tmp_path: Path) -> None:
    big = big_motion_packet(xmp.MAX_PACKET_BYTES + 1024, pts=1)
    path = heic_with_xmp(tmp_path / "PXL_2.MP.heic", big, b"\x00\x00\x00\x08free")
    with pytest.raises(UnreadableFile, match="XMP packet too large"):
        motion.read_motion(path, read_still_meta(path))


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description
 xmlns:GCamera="http://ns.google.com/photos/1.0/camera/" GCamera:MotionPhoto="&lol3;"/></rdf:RDF>"""
EXTERNAL = b"""<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>
<x>&e;</x>"""
EXTERNAL_DTD = b'<?xml version="1.0"?><!DOCTYPE x SYSTEM "http://example.invalid/x.dtd"><x/>'


@pytest.mark.parametrize("bomb", [BILLION_LAUGHS, EXTERNAL, EXTERNAL_DTD])
def test_entity_declarations_are_refused(bomb: bytes) -> None:
    with pytest.raises(xmp.XmpError, match="DTD"):
        xmp.parse_packet(bomb)
    with pytest.raises(UnreadableFile, match="DTD"):
        motion.read_motion_xmp(bomb + b"<!-- MotionPhoto -->")


def test_undefined_entities_and_undeclared_prefixes_are_malformed() -> None:
    with pytest.raises(xmp.XmpError, match="undefined entity"):
        xmp.parse_packet(b"<x>&lol;</x>")
    with pytest.raises(xmp.XmpError, match="unbound prefix"):
        motion.read_motion_xmp(b'<x GCamera:MotionPhoto="1"/>')


def test_deep_nesting_and_element_floods_are_refused() -> None:
    deep = b"<a>" * (xmp.MAX_DEPTH + 1) + b"</a>" * (xmp.MAX_DEPTH + 1)
    with pytest.raises(xmp.XmpError, match="deeper than"):
        xmp.parse_packet(deep)
    just_deep_enough = b"<a>" * xmp.MAX_DEPTH + b"</a>" * xmp.MAX_DEPTH
    assert xmp.parse_packet(just_deep_enough).root.tag == "a"
    flood = b"<a>" + b"<b/>" * xmp.MAX_ELEMENTS + b"</a>"
    with pytest.raises(xmp.XmpError, match="more than"):
        xmp.parse_packet(flood)


def test_unusual_prefixes_resolve_by_namespace() -> None:
    """Writers choose prefixes freely; only the namespace URI names a property."""
    attrs = 'cam:MotionPhoto="1" cam:MotionPhotoPresentationTimestampUs="42"'
    body = (
        '<c:Directory xmlns:c="http://ns.google.com/photos/1.0/container/"'
        ' xmlns:i="http://ns.google.com/photos/1.0/container/item/"><rdf:Seq>'
        '<rdf:li rdf:parseType="Resource"><c:Item i:Semantic="Primary" i:Length="0"/></rdf:li>'
        '<rdf:li rdf:parseType="Resource"><c:Item rdf:parseType="Resource">'
        "<i:Semantic>MotionPhoto</i:Semantic><i:Length>1234</i:Length></c:Item></rdf:li>"
        "</rdf:Seq></c:Directory>"
    )
    found = motion.read_motion_xmp(packet(body, camera_prefix="cam", attrs=attrs))
    assert found.is_motion
    assert found.camera["MotionPhotoPresentationTimestampUs"] == "42"
    assert found.items == [
        {"Semantic": "Primary", "Length": "0"},
        {"Semantic": "MotionPhoto", "Length": "1234"},
    ]
    # The right prefix on the wrong namespace is not the Camera namespace.
    wrong = b'<rdf:RDF xmlns:rdf="%s"><rdf:Description xmlns:GCamera="urn:other"' % RDF.encode()
    wrong += b' GCamera:MotionPhoto="1"/></rdf:RDF>'
    assert not motion.read_motion_xmp(wrong).is_motion


def test_packets_without_motion_properties_are_not_parsed() -> None:
    """Ordinary photos with broken or odd XMP stay ordinary (and cost a substring search)."""
    assert motion.read_motion_xmp(b"<not xml at all").camera == {}
    assert not motion.is_motion_xmp(None)


_NAME = st.text(string.ascii_letters, min_size=1, max_size=8).filter(
    lambda s: not s.lower().startswith("xml")
)
_VALUE = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff"),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(prefix=_NAME, value=_VALUE, filler=st.integers(0, 200), as_element=st.booleans())
def test_property_values_round_trip_whatever_the_prefix(
    prefix: str, value: str, filler: int, as_element: bool
) -> None:
    from xml.sax.saxutils import escape, quoteattr

    pad = "".join(f"<dc:x{i}>{i}</dc:x{i}>" for i in range(filler))
    dc = 'xmlns:dc="http://purl.org/dc/elements/1.1/"'
    if as_element:
        body = f"{pad}<{prefix}:Note>{escape(value)}</{prefix}:Note>"
        attrs = dc
    else:
        body = pad
        attrs = f"{dc} {prefix}:Note={quoteattr(value)}"
    parsed = xmp.parse_packet(packet(body, camera_prefix=prefix, attrs=attrs))
    props = xmp.properties(parsed.root)
    # Control characters are excluded from `value`, so XML's line-end and attribute-value
    # normalisation leave it alone; element text is stripped as `properties` documents.
    assert props[(CAMERA, "Note")] == (value.strip() if as_element else value)
    assert parsed.prefixes[CAMERA] == prefix
