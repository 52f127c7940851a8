"""`NAME.ext.xmp` beside each output: the person's tags carried over, provenance linked.

Why this name: digiKam (default), darktable and Immich's writer name a sidecar after the whole
file name (`IMG_1234_lmd.HEIC.xmp`), and Immich and PhotoPrism read it; `IMG_1234.xmp` would
also belong to the Live Photo's `IMG_1234.MOV` (live-photo-formats.md §3.3,
ecosystem-expectations.md §9.2).

What goes in (Adobe's XMP media-management schema, `xmpMM:`):
- `DerivedFrom` (a `stRef:ResourceRef`: the original's `documentID` and `instanceID`, and
  its `filePath` relative to the sidecar's folder, escaped as lmd shows names when it holds
  bytes that are not UTF-8) and `OriginalDocumentID` link the output
  to the original: digiKam shows the two as versions, PhotoPrism stacks on
  OriginalDocumentID, and a person can tell which photo a restoration came from.
- `DocumentID` (stable for this output's name, so a re-run is the same document) and
  `InstanceID` (from the output's content: a new rendition is a new instance).
- one `History` event (`stEvt:action` "derived", `softwareAgent` lmd, `when`), added once per
  instance.

The original's IDs come from its own sidecar or embedded XMP when it has them; otherwise they
are derived from its content (`core.hashing`'s whole-file digest), so every run names the same
original the same way without ever writing to it.

Carrying over: the target's sidecar (`NAME.ext.xmp`, else `NAME.xmp`) supplies the person's
ratings, labels, keywords, faces, captions; an existing sidecar of the output (the person may
have tagged the restoration since the last run) is merged over it, its values winning. Only
the properties above are lmd's; dimensions (`tiff:`/`exif:` sizes, orientation) are dropped
unless the caller gives the output's. A sidecar that cannot be parsed is never overwritten:
the output's own is left as it is (and reported), a target's is skipped (and reported).
The file is written atomically (`daemon.output.atomic`).
"""

from __future__ import annotations

import copy
import datetime as _dt
import os
import re
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from core.hashing import ALGORITHM, UnknownDigest, digest_file, split_digest
from daemon.files.names import escape, needs_escape
from daemon.files.xmp import RDF_NS, XmpError, parse_packet, split
from daemon.output.atomic import atomic_write_bytes

X_NS = "adobe:ns:meta/"
XMP_MM = "http://ns.adobe.com/xap/1.0/mm/"
ST_REF = "http://ns.adobe.com/xap/1.0/sType/ResourceRef#"
ST_EVT = "http://ns.adobe.com/xap/1.0/sType/ResourceEvent#"
TIFF_NS = "http://ns.adobe.com/tiff/1.0/"
EXIF_NS = "http://ns.adobe.com/exif/1.0/"
_PREFIXES = {
    RDF_NS: "rdf",
    X_NS: "x",
    XMP_MM: "xmpMM",
    ST_REF: "stRef",
    ST_EVT: "stEvt",
    TIFF_NS: "tiff",
    EXIF_NS: "exif",
    "http://ns.adobe.com/xap/1.0/": "xmp",
    "http://purl.org/dc/elements/1.1/": "dc",
}
_LMD_IDS = {(XMP_MM, n) for n in ("DocumentID", "InstanceID", "OriginalDocumentID", "DerivedFrom")}
_DIMENSIONS = {
    (TIFF_NS, "ImageWidth"),
    (TIFF_NS, "ImageLength"),
    (TIFF_NS, "Orientation"),
    (EXIF_NS, "PixelXDimension"),
    (EXIF_NS, "PixelYDimension"),
}
_ID_NAMESPACE = uuid.UUID("5b0c1d8e-6f1e-4a53-9a0f-6c6d64786d70")  # lmd's own uuid5 namespace
_XPACKET_BEGIN = '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
_XPACKET_END = '\n<?xpacket end="w"?>\n'


def _q(ns: str, local: str) -> str:
    return f"{{{ns}}}{local}"


def _as_text(name: str) -> str:
    """`name` as XML text: escaped as lmd shows names when it holds bytes that are not UTF-8
    or control characters (which XML cannot hold); a plain backslash stays one."""
    return escape(name) if needs_escape(name.replace("\\", "")) else name


def sidecar_path(media: Path) -> Path:
    """`IMG_1234_lmd.HEIC` -> `IMG_1234_lmd.HEIC.xmp`."""
    return media.with_name(media.name + ".xmp")


def target_sidecars(target: Path) -> list[Path]:
    """The target's sidecars that exist, preferred first: `NAME.ext.xmp`, then `NAME.xmp`."""
    names = [sidecar_path(target), target.with_suffix(".xmp")]
    return [p for p in dict.fromkeys(names) if p.is_file()]


@dataclass
class SidecarResult:
    path: Path
    written: bool
    document_id: str = ""
    instance_id: str = ""
    carried_from: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _whole_digest_hex(path: Path, known: str | None) -> str:
    """Hex of the file's whole-content digest in lmd's current algorithm (`core.hashing`):
    `known` when the caller already has that, else computed. Only that one algorithm is
    taken, so the IDs derived from it are the same on every run, whatever the caller holds."""
    if known:
        try:
            algorithm, hexpart = split_digest(known)
        except UnknownDigest:
            algorithm, hexpart = "", ""
        if algorithm == ALGORITHM:
            return hexpart
    return split_digest(digest_file(path))[1]


def _content_id(kind: str, digest_hex: str) -> str:
    """`xmp.did:`/`xmp.iid:` followed by a UUID made of the content digest (Adobe's form)."""
    return f"xmp.{kind}:{uuid.UUID(digest_hex[:32])}"


Props = dict[tuple[str, str], ET.Element]


def _properties(root: ET.Element) -> Props:
    """Every top-level property of every rdf:Description, as an element (attributes become
    text elements), keyed by (namespace, name). A later description does not override."""
    props: Props = {}
    for desc in root.iter(_q(RDF_NS, "Description")):
        for name, value in desc.attrib.items():
            key = split(name)
            if key[0] in (RDF_NS, "") or key in props:
                continue
            element = ET.Element(name)
            element.text = value
            props[key] = element
        for child in desc:
            props.setdefault(split(child.tag), copy.deepcopy(child))
    return props


def _read(path: Path, problems: list[str]) -> tuple[Props, dict[str, str]] | None:
    try:
        packet = parse_packet(path.read_bytes())
    except (OSError, XmpError) as exc:
        problems.append(f"{path}: {exc}")
        return None
    return _properties(packet.root), packet.prefixes


def _text(props: Props, key: tuple[str, str]) -> str | None:
    element = props.get(key)
    text = (element.text or "").strip() if element is not None and len(element) == 0 else ""
    return text or None


def _original_ids(props: Props, original: Path, known: str | None) -> tuple[str, str]:
    document = _text(props, (XMP_MM, "DocumentID"))
    instance = _text(props, (XMP_MM, "InstanceID"))
    if document and instance:
        return document, instance
    digest = _whole_digest_hex(original, known)
    return document or _content_id("did", digest), instance or _content_id("iid", digest)


def _history_with(existing: ET.Element | None, event: dict[str, str]) -> ET.Element:
    history = copy.deepcopy(existing) if existing is not None else ET.Element(_q(XMP_MM, "History"))
    seq = history.find(_q(RDF_NS, "Seq"))
    if seq is None:
        history.clear()
        history.tag = _q(XMP_MM, "History")
        seq = ET.SubElement(history, _q(RDF_NS, "Seq"))
    for li in seq.findall(_q(RDF_NS, "li")):
        fields = {split(k)[1]: v for k, v in li.attrib.items()}
        fields.update({split(c.tag)[1]: (c.text or "") for c in li})
        if fields.get("instanceID") == event["instanceID"]:
            return history
    li = ET.SubElement(seq, _q(RDF_NS, "li"), {_q(RDF_NS, "parseType"): "Resource"})
    for name, value in event.items():
        ET.SubElement(li, _q(ST_EVT, name)).text = value
    return history


def _register(prefixes: dict[str, str]) -> None:
    for uri, prefix in {**prefixes, **_PREFIXES}.items():
        if prefix and not re.fullmatch(r"ns\d+", prefix):
            try:
                ET.register_namespace(prefix, uri)
            except ValueError:
                continue


def build_sidecar(
    props: Props,
    *,
    document_id: str,
    instance_id: str,
    original_ids: tuple[str, str],
    original_ref: str,
    event: dict[str, str],
    dimensions: tuple[int, int] | None,
) -> bytes:
    """The packet: the carried properties, then lmd's xmpMM links (see the module doc)."""
    root = ET.Element(_q(X_NS, "xmpmeta"))
    rdf = ET.SubElement(root, _q(RDF_NS, "RDF"))
    desc = ET.SubElement(rdf, _q(RDF_NS, "Description"), {_q(RDF_NS, "about"): ""})
    for key, element in props.items():
        if key in _LMD_IDS or key in _DIMENSIONS or key == (XMP_MM, "History"):
            continue
        desc.append(element)
    if dimensions is not None:
        width, height = dimensions
        for ns, local, value in (
            (TIFF_NS, "ImageWidth", width),
            (TIFF_NS, "ImageLength", height),
            (EXIF_NS, "PixelXDimension", width),
            (EXIF_NS, "PixelYDimension", height),
        ):
            ET.SubElement(desc, _q(ns, local)).text = str(value)
    ET.SubElement(desc, _q(XMP_MM, "DocumentID")).text = document_id
    ET.SubElement(desc, _q(XMP_MM, "InstanceID")).text = instance_id
    ET.SubElement(desc, _q(XMP_MM, "OriginalDocumentID")).text = original_ids[0]
    derived = ET.SubElement(desc, _q(XMP_MM, "DerivedFrom"), {_q(RDF_NS, "parseType"): "Resource"})
    ET.SubElement(derived, _q(ST_REF, "documentID")).text = original_ids[0]
    ET.SubElement(derived, _q(ST_REF, "instanceID")).text = original_ids[1]
    ET.SubElement(derived, _q(ST_REF, "filePath")).text = original_ref
    desc.append(_history_with(props.get((XMP_MM, "History")), event))
    body = ET.tostring(root, encoding="unicode")
    return (_XPACKET_BEGIN + body + _XPACKET_END).encode("utf-8")


def write_xmp_sidecar(
    output: Path,
    original: Path,
    *,
    target: Path | None = None,
    original_xmp: bytes | None = None,
    output_digest: str | None = None,
    original_digest: str | None = None,
    dimensions: tuple[int, int] | None = None,
    restorer: str | None = None,
    software: str = "lmd",
    when: _dt.datetime | None = None,
) -> SidecarResult:
    """Write `output`'s sidecar; see the module doc.

    `original` is the still the output was restored from (its reference, or the backup in
    replace mode); `target` the file whose sidecar carries the person's tags (default
    `original`). `original_xmp` is the original's embedded packet, when the caller has it;
    the digests (`core.hashing` named digests, e.g. the job row's `blake3:...`) save
    re-reading files the caller already hashed. Raises `OutputError` only
    when the write itself fails; unreadable sidecars are reported in `problems`.
    """
    path = sidecar_path(output)
    result = SidecarResult(path=path, written=False)
    merged: Props = {}
    prefixes: dict[str, str] = {}
    for source in reversed(target_sidecars(target or original)):  # preferred one last: it wins
        read = _read(source, result.problems)
        if read is not None:
            merged.update(read[0])
            prefixes.update(read[1])
            result.carried_from.append(source)
    if path.exists():
        read = _read(path, result.problems)
        if read is None:
            result.problems.append(f"{path} left as it is: it cannot be parsed")
            return result
        own_document = _text(read[0], (XMP_MM, "DocumentID"))
        merged.update(read[0])
        prefixes.update(read[1])
    else:
        own_document = None

    original_props: Props = {}
    if original_xmp:
        try:
            original_props = _properties(parse_packet(original_xmp).root)
        except XmpError as exc:
            result.problems.append(f"{original} embedded XMP: {exc}")
    for source in target_sidecars(original):
        read = _read(source, [])
        if read is not None:
            original_props = {**original_props, **read[0]}
            break
    original_ids = _original_ids(original_props, original, original_digest)
    document_id = own_document
    if not document_id or document_id == original_ids[0]:
        named = f"{original_ids[0]}/{_as_text(output.name)}"
        document_id = f"xmp.did:{uuid.uuid5(_ID_NAMESPACE, named)}"
    instance_id = _content_id("iid", _whole_digest_hex(output, output_digest))
    stamp = (when or _dt.datetime.now(_dt.UTC)).isoformat(timespec="seconds")
    event = {
        "action": "derived",
        "instanceID": instance_id,
        "parameters": f"restored from a Live Photo frame{f' by {restorer}' if restorer else ''}",
        "softwareAgent": software,
        "when": stamp,
    }
    _register(prefixes)
    packet = build_sidecar(
        merged,
        document_id=document_id,
        instance_id=instance_id,
        original_ids=original_ids,
        original_ref=_as_text(
            os.path.relpath(os.path.abspath(original), os.path.abspath(path.parent))
        ),
        event=event,
        dimensions=dimensions,
    )
    atomic_write_bytes(path, packet)
    result.written = True
    result.document_id, result.instance_id = document_id, instance_id
    return result
