"""An XMP sidecar for an output whose name is not UTF-8 (`IMG_E1203\\xff_lmdr.HEIC`, issue 11
item 2) is written, naming its original as lmd shows names (escaped): it was not written at
all ("xmp_sidecar_failed: surrogates not allowed"), leaving digiKam and Immich without the
link to the original."""

from __future__ import annotations

import os
from pathlib import Path

from daemon.files.xmp import parse_packet
from daemon.publish.xmp_sidecar import write_xmp_sidecar

ST_REF = "http://ns.adobe.com/xap/1.0/sType/ResourceRef#"


def test_a_sidecar_for_a_name_that_is_not_utf8_is_written(tmp_path: Path) -> None:
    folder = tmp_path / "2026"
    folder.mkdir()
    original = folder / os.fsdecode(b"IMG_E1203\xff.HEIC")
    original.write_bytes(b"original bytes")
    output = folder / os.fsdecode(b"IMG_E1203\xff_lmdr.HEIC")
    output.write_bytes(b"restored bytes")
    result = write_xmp_sidecar(output, original, restorer="guided")
    assert result.written and result.path == folder / os.fsdecode(b"IMG_E1203\xff_lmdr.HEIC.xmp")
    root = parse_packet(result.path.read_bytes()).root
    [path] = [el.text for el in root.iter(f"{{{ST_REF}}}filePath")]
    assert path == "IMG_E1203\\xff.HEIC"
    again = write_xmp_sidecar(output, original, restorer="guided")
    assert again.document_id == result.document_id  # the output's identity is stable
