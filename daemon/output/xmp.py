"""Carry an XMP packet over to a restored still, minus what no longer holds, plus provenance.

Why edit rather than copy: the restored file is a plain still. Properties that describe an
embedded video (Google Motion Photo `Camera:MotionPhoto`, `Container:Directory`, legacy
`MicroVideo*`) or an Ultra HDR gain map (`hdrgm:*`) would make Immich, Google Photos and Android
look for bytes that are not there, so they are removed; tiff/exif dimensions and orientation are
fixed to match the pixels. Everything else (ratings, captions, people, CreateDate...) is kept.
Provenance goes into a private namespace so it is readable by exiftool and never collides with
another tool's properties. Packets are parsed by the one XMP reader, `daemon.files.xmp` (size,
depth and entity limits; names by namespace URI); this module only edits and serialises.
"""

from __future__ import annotations

import datetime as _dt
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

from daemon.files.xmp import RDF_NS, XmpError, parse_packet
from daemon.files.xmp import split as _split

LMD_NS = "https://lmd.invalid/ns/1.0/"
LMD_PREFIX = "lmd"
X_NS = "adobe:ns:meta/"
TIFF_NS = "http://ns.adobe.com/tiff/1.0/"
EXIF_NS = "http://ns.adobe.com/exif/1.0/"
GCAMERA_NS = "http://ns.google.com/photos/1.0/camera/"
CONTAINER_NS = "http://ns.google.com/photos/1.0/container/"
HDRGM_NS = "http://ns.adobe.com/hdr-gain-map/1.0/"

_MOTION_PROPS = {
    "MotionPhoto",
    "MotionPhotoVersion",
    "MotionPhotoPresentationTimestampUs",
    "MicroVideo",
    "MicroVideoVersion",
    "MicroVideoOffset",
    "MicroVideoPresentationTimestampUs",
}
_DROP_NAMESPACES = {HDRGM_NS, CONTAINER_NS}
_XPACKET_BEGIN = '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
_XPACKET_END = '\n<?xpacket end="w"?>'
_KNOWN_PREFIXES = {
    RDF_NS: "rdf",
    X_NS: "x",
    TIFF_NS: "tiff",
    EXIF_NS: "exif",
    LMD_NS: LMD_PREFIX,
    "http://ns.adobe.com/xap/1.0/": "xmp",
    "http://purl.org/dc/elements/1.1/": "dc",
    "http://ns.adobe.com/photoshop/1.0/": "photoshop",
}


def _q(ns: str, local: str) -> str:
    return f"{{{ns}}}{local}"


def _register_prefixes(prefixes: Mapping[str, str]) -> None:
    """Keep the packet's own prefixes on output (ElementTree would invent ns0, ns1...)."""
    for uri, prefix in prefixes.items():
        if not re.fullmatch(r"ns\d+", prefix):
            try:
                ET.register_namespace(prefix, uri)
            except ValueError:
                continue
    for uri, prefix in _KNOWN_PREFIXES.items():
        ET.register_namespace(prefix, uri)


def _drop(qname: str) -> bool:
    ns, local = _split(qname)
    return ns in _DROP_NAMESPACES or (ns == GCAMERA_NS and local in _MOTION_PROPS)


def _ncname(key: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", str(key)) or "_"
    return f"_{name}" if not re.match(r"[A-Za-z_]", name) else name


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, _dt.datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _add_value(parent: ET.Element, key: str, value: Any) -> None:
    el = ET.SubElement(parent, _q(LMD_NS, _ncname(key)))
    if isinstance(value, Mapping):
        el.set(_q(RDF_NS, "parseType"), "Resource")
        for k, v in value.items():
            if v is not None:
                _add_value(el, k, v)
    elif isinstance(value, list | tuple):
        seq = ET.SubElement(el, _q(RDF_NS, "Seq"))
        for item in value:
            ET.SubElement(seq, _q(RDF_NS, "li")).text = _text(item)
    else:
        el.text = _text(value)


def _empty_packet() -> ET.Element:
    root = ET.Element(_q(X_NS, "xmpmeta"))
    ET.SubElement(root, _q(RDF_NS, "RDF"))
    return root


def _set_number(desc: ET.Element, ns: str, local: str, value: int) -> None:
    qn = _q(ns, local)
    if qn in desc.attrib:
        desc.set(qn, str(value))
    for child in desc.findall(qn):
        child.text = str(value)


def merge_xmp(
    original: bytes | None,
    *,
    provenance: Mapping[str, Any] | None,
    width: int,
    height: int,
    reset_orientation: bool,
) -> bytes | None:
    """The XMP packet for the restored file, or None when there is nothing to write.

    Raises `XmpError` (with the reason) when `original` is refused or not parseable; the caller
    then keeps the packet verbatim rather than lose it.
    """
    if not original and not provenance:
        return None
    if original:
        parsed = parse_packet(original)
        _register_prefixes(parsed.prefixes)
        root = parsed.root
        if root.tag == _q(RDF_NS, "RDF"):  # a bare rdf:RDF without x:xmpmeta
            wrapper = _empty_packet()
            wrapper.remove(wrapper[0])
            wrapper.append(root)
            root = wrapper
    else:
        _register_prefixes({})
        root = _empty_packet()
    rdf = root if root.tag == _q(RDF_NS, "RDF") else root.find(_q(RDF_NS, "RDF"))
    if rdf is None:
        rdf = ET.SubElement(root, _q(RDF_NS, "RDF"))

    for desc in list(rdf.findall(_q(RDF_NS, "Description"))):
        for attr in [a for a in desc.attrib if _drop(a) or _split(a)[0] == LMD_NS]:
            del desc.attrib[attr]
        for child in [c for c in desc if _drop(c.tag) or _split(c.tag)[0] == LMD_NS]:
            desc.remove(child)
        _set_number(desc, TIFF_NS, "ImageWidth", width)
        _set_number(desc, TIFF_NS, "ImageLength", height)
        _set_number(desc, EXIF_NS, "PixelXDimension", width)
        _set_number(desc, EXIF_NS, "PixelYDimension", height)
        if reset_orientation:
            _set_number(desc, TIFF_NS, "Orientation", 1)
        if not desc.attrib.keys() - {_q(RDF_NS, "about")} and len(desc) == 0:
            rdf.remove(desc)

    if provenance:
        desc = ET.SubElement(rdf, _q(RDF_NS, "Description"), {_q(RDF_NS, "about"): ""})
        for key, value in provenance.items():
            if value is not None:
                _add_value(desc, key, value)
    body = ET.tostring(root, encoding="unicode")
    return (_XPACKET_BEGIN + body + _XPACKET_END).encode("utf-8")


def _value_of(el: ET.Element) -> Any:
    seq = el.find(_q(RDF_NS, "Seq"))
    if seq is not None:
        return [li.text or "" for li in seq.findall(_q(RDF_NS, "li"))]
    if len(el):
        return {_split(c.tag)[1]: _value_of(c) for c in el}
    return el.text or ""


def read_provenance(packet: bytes | None) -> dict[str, Any] | None:
    """lmd's provenance properties from an XMP packet (None when the file is not lmd's)."""
    if not packet:
        return None
    try:
        root = parse_packet(packet).root
    except XmpError:
        return None
    found: dict[str, Any] = {}
    for desc in root.iter(_q(RDF_NS, "Description")):
        for attr, value in desc.attrib.items():
            ns, local = _split(attr)
            if ns == LMD_NS:
                found[local] = value
        for child in desc:
            ns, local = _split(child.tag)
            if ns == LMD_NS:
                found[local] = _value_of(child)
    return found or None
