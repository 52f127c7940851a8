"""The one XMP reader: a real XML parser, keyed by namespace URI, with limits.

XMP packets come from untrusted files, so the parser is the standard library's expat driven
directly (one pass, linear in the packet; a 1 MB packet parses in tens of milliseconds), with
limits a hostile packet hits before it costs anything:

- size: at most `MAX_PACKET_BYTES`;
- DTDs refused outright (XMP never needs one): no entity declarations, so no billion-laughs
  expansion and no external entities, and external parameter entities are never parsed;
- nesting at most `MAX_DEPTH` elements deep, at most `MAX_ELEMENTS` elements in all.

Names are resolved by expat's namespace processing, so properties are addressed by
`(namespace URI, local name)` and any prefix a writer chose resolves (`GCamera:` and `Camera:`
are the same namespace); an undeclared prefix is a malformed packet. Every refusal is an
`XmpError` (an `UnreadableFile`) that says why.

The limits are in `daemon.files.limits`; the parse runs in C, linear in the packet, and its
time counts against the reader call's per-file budget (`daemon.files.budget`).

`parse_packet` gives an `ElementTree` element (what `daemon.output.xmp` edits and writes back),
plus the prefixes the packet declared; `properties` and `resource_fields` read the simple
values discovery needs (Motion Photo fields, the Container directory).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from xml.parsers import expat

from daemon.files import budget
from daemon.files.errors import UnreadableFile
from daemon.files.limits import MAX_PACKET_BYTES
from daemon.files.limits import XMP_MAX_DEPTH as MAX_DEPTH
from daemon.files.limits import XMP_MAX_ELEMENTS as MAX_ELEMENTS

RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_SEP = "\x01"  # expat joins namespace URI and local name with this (never in a URI or a name)
_DESCRIPTION = f"{{{RDF_NS}}}Description"


class XmpError(UnreadableFile):
    """An XMP packet that was refused or could not be parsed; `reason` says which."""


@dataclass
class XmpPacket:
    """A parsed packet: its root element and the prefix each namespace URI was declared with."""

    root: ET.Element
    prefixes: dict[str, str] = field(default_factory=dict)


def _qname(name: str) -> str:
    uri, sep, local = name.partition(_SEP)
    return f"{{{uri}}}{local}" if sep else name


class _Builder:
    """expat callbacks building an ElementTree, counting depth and elements as it goes."""

    def __init__(self) -> None:
        self.tree = ET.TreeBuilder()
        self.depth = 0
        self.elements = 0
        self.prefixes: dict[str, str] = {}

    def start(self, name: str, attrs: dict[str, str]) -> None:
        self.depth += 1
        self.elements += 1
        if self.depth > MAX_DEPTH:
            raise XmpError(f"XMP nests elements deeper than {MAX_DEPTH}")
        if self.elements > MAX_ELEMENTS:
            raise XmpError(f"XMP has more than {MAX_ELEMENTS} elements")
        self.tree.start(_qname(name), {_qname(k): v for k, v in attrs.items()})

    def end(self, name: str) -> None:
        self.depth -= 1
        self.tree.end(_qname(name))

    def namespace(self, prefix: str | None, uri: str | None) -> None:
        if prefix and uri:
            self.prefixes.setdefault(uri, prefix)


def _refuse_dtd(*_args: object) -> None:
    raise XmpError("XMP declares a DTD (refused: entities could expand without bound)")


def _refuse_entity(*_args: object) -> None:
    raise XmpError("XMP refers to an external entity (refused)")


@budget.within_budget
def parse_packet(packet: bytes) -> XmpPacket:
    """Parse an XMP packet (with or without its `<?xpacket?>` wrapper and padding).

    Raises `XmpError` with the reason when the packet is too large, declares a DTD, nests too
    deeply, has too many elements or is not well-formed namespaced XML.
    """
    if len(packet) > MAX_PACKET_BYTES:
        raise XmpError(f"XMP packet too large ({len(packet)} bytes, limit {MAX_PACKET_BYTES})")
    data = packet.strip(b"\x00 \r\n\t")
    if not data:
        raise XmpError("empty XMP packet")
    builder = _Builder()
    parser = expat.ParserCreate(namespace_separator=_SEP)
    parser.buffer_text = True
    parser.ordered_attributes = False
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse_dtd
    parser.EntityDeclHandler = _refuse_dtd
    parser.ExternalEntityRefHandler = _refuse_entity
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.tree.data
    parser.StartNamespaceDeclHandler = builder.namespace
    try:
        parser.Parse(data, True)
        root = builder.tree.close()
    except expat.ExpatError as exc:
        raise XmpError(f"XMP is not well-formed XML: {expat.ErrorString(exc.code)}") from None
    except (ValueError, AssertionError, RecursionError) as exc:  # TreeBuilder on odd input
        raise XmpError(f"XMP could not be read: {exc}") from None
    budget.visit("an XMP packet")  # its elements have their own cap, MAX_ELEMENTS
    return XmpPacket(root, builder.prefixes)


def split(qname: str) -> tuple[str, str]:
    """(namespace URI, local name) of an ElementTree name (`""` for no namespace)."""
    if qname.startswith("{"):
        ns, _, local = qname[1:].partition("}")
        return ns, local
    return "", qname


def properties(root: ET.Element) -> dict[tuple[str, str], str]:
    """(namespace URI, local name) -> value of the simple properties of every
    `rdf:Description`: its attributes, and child elements that hold only text. The first
    occurrence wins, as a reader of the first description would see."""
    out: dict[tuple[str, str], str] = {}
    for desc in root.iter(_DESCRIPTION):
        for name, value in desc.attrib.items():
            out.setdefault(split(name), value)
        for child in desc:
            if len(child) == 0 and not child.attrib.get(f"{{{RDF_NS}}}resource"):
                out.setdefault(split(child.tag), (child.text or "").strip())
    return out


def resource_fields(element: ET.Element, namespace: str) -> dict[str, str]:
    """Local name -> value of `element`'s fields in `namespace`, written either as attributes
    or as text-only child elements (the two RDF forms of a resource's properties)."""
    out: dict[str, str] = {}
    for name, value in element.attrib.items():
        ns, local = split(name)
        if ns == namespace:
            out.setdefault(local, value)
    for child in element:
        ns, local = split(child.tag)
        if ns == namespace and len(child) == 0:
            out.setdefault(local, (child.text or "").strip())
    return out
