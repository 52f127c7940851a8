"""XMP sidecars beside outputs, read back with exiftool: provenance links to the original, the
person's tags and ratings carried over and kept, unreadable sidecars never overwritten."""

from __future__ import annotations

import datetime as _dt
import json
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from core.hashing import digest_bytes, split_digest
from daemon.publish.xmp_sidecar import sidecar_path, target_sidecars, write_xmp_sidecar

EXIFTOOL = shutil.which("exiftool")
needs_exiftool = pytest.mark.skipif(EXIFTOOL is None, reason="exiftool is not installed")
WHEN = _dt.datetime(2026, 12, 1, 12, 0, tzinfo=_dt.UTC)


def exiftool_read(path: Path) -> dict[str, Any]:
    assert EXIFTOOL is not None
    out = subprocess.run(
        [EXIFTOOL, "-j", "-struct", "-G1", str(path)], capture_output=True, check=True, text=True
    )
    return json.loads(out.stdout)[0]


def exiftool_write(path: Path, *assignments: str) -> None:
    """Write (or create) an XMP sidecar the way a person's tool would: with exiftool."""
    assert EXIFTOOL is not None
    args = [EXIFTOOL, "-q", "-overwrite_original", *assignments, str(path)]
    subprocess.run(args, check=True, capture_output=True)


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    original = tmp_path / "2026" / "IMG_0001.HEIC"
    original.parent.mkdir()
    original.write_bytes(b"original bytes")
    output = tmp_path / "out" / "2026" / "IMG_0001.HEIC"
    output.parent.mkdir(parents=True)
    output.write_bytes(b"restored bytes")
    return original, output


def _uuid_of(data: bytes) -> str:
    return str(uuid.UUID(split_digest(digest_bytes(data))[1][:32]))


@needs_exiftool
def test_the_sidecar_links_the_output_to_its_original(files: tuple[Path, Path]) -> None:
    original, output = files
    result = write_xmp_sidecar(output, original, restorer="guided", when=WHEN)
    assert result.written and result.path == output.parent / "IMG_0001.HEIC.xmp"
    tags = exiftool_read(result.path)
    # Without IDs of its own, the original is named by its content, the output likewise.
    original_did = f"xmp.did:{_uuid_of(b'original bytes')}"
    assert tags["XMP-xmpMM:DerivedFrom"] == {
        "DocumentID": original_did,
        "InstanceID": f"xmp.iid:{_uuid_of(b'original bytes')}",
        "FilePath": "../../2026/IMG_0001.HEIC",
    }
    assert tags["XMP-xmpMM:OriginalDocumentID"] == original_did
    assert tags["XMP-xmpMM:InstanceID"] == f"xmp.iid:{_uuid_of(b'restored bytes')}"
    assert tags["XMP-xmpMM:DocumentID"].startswith("xmp.did:")
    assert tags["XMP-xmpMM:DocumentID"] not in (original_did, result.instance_id)
    (event,) = tags["XMP-xmpMM:History"]
    assert event["Action"] == "derived" and event["SoftwareAgent"] == "lmd"
    assert "guided" in event["Parameters"] and event["When"].startswith("2026:12:01 12:00")


@needs_exiftool
def test_the_persons_tags_and_ratings_are_carried_over(files: tuple[Path, Path]) -> None:
    original, output = files
    exiftool_write(
        sidecar_path(original),
        "-XMP-xmp:Rating=4",
        "-XMP-dc:Subject=beach",
        "-XMP-dc:Subject=family",
        "-XMP-digiKam:TagsList=Places/Beach",
        "-XMP-dc:Description=Grandma's birthday",
        "-XMP-xmpMM:DocumentID=xmp.did:ABC",
        "-XMP-xmpMM:InstanceID=xmp.iid:DEF",
        "-XMP-tiff:ImageWidth=4032",
    )
    before = sidecar_path(original).read_bytes()
    result = write_xmp_sidecar(output, original, when=WHEN)
    assert result.carried_from == [sidecar_path(original)]
    tags = exiftool_read(result.path)
    assert tags["XMP-xmp:Rating"] == 4
    assert tags["XMP-dc:Subject"] == ["beach", "family"]
    assert tags["XMP-digiKam:TagsList"] == ["Places/Beach"]
    assert tags["XMP-dc:Description"] == "Grandma's birthday"
    assert tags["XMP-xmpMM:DerivedFrom"]["DocumentID"] == "xmp.did:ABC"
    assert tags["XMP-xmpMM:DerivedFrom"]["InstanceID"] == "xmp.iid:DEF"
    assert tags["XMP-xmpMM:OriginalDocumentID"] == "xmp.did:ABC"
    assert tags["XMP-xmpMM:DocumentID"] != "xmp.did:ABC"  # the output is its own document
    assert "XMP-tiff:ImageWidth" not in tags  # the original's size is not the output's
    assert sidecar_path(original).read_bytes() == before  # the original's sidecar untouched


@needs_exiftool
def test_edits_made_on_the_output_survive_a_rerun(files: tuple[Path, Path]) -> None:
    original, output = files
    exiftool_write(sidecar_path(original), "-XMP-xmp:Rating=3", "-XMP-dc:Subject=beach")
    first = write_xmp_sidecar(output, original, when=WHEN)
    # The person rates the restoration 5 and labels it in digiKam; lmd then runs again on
    # a new rendition of the output.
    exiftool_write(first.path, "-XMP-xmp:Rating=5", "-XMP-xmp:Label=Red")
    output.write_bytes(b"restored again, better")
    second = write_xmp_sidecar(output, original, when=WHEN, dimensions=(4032, 3024))
    tags = exiftool_read(second.path)
    assert tags["XMP-xmp:Rating"] == 5 and tags["XMP-xmp:Label"] == "Red"
    assert tags["XMP-dc:Subject"] == ["beach"]
    assert second.document_id == first.document_id  # same output, same document
    assert second.instance_id != first.instance_id  # a new rendition, a new instance
    assert tags["XMP-tiff:ImageWidth"] == 4032 and tags["XMP-exif:ExifImageHeight"] == 3024
    assert [e["InstanceID"] for e in tags["XMP-xmpMM:History"]] == [
        first.instance_id,
        second.instance_id,
    ]
    third = write_xmp_sidecar(output, original, when=WHEN)  # same content: no new event
    assert len(exiftool_read(third.path)["XMP-xmpMM:History"]) == 2


@needs_exiftool
def test_embedded_ids_of_the_original_are_used(files: tuple[Path, Path]) -> None:
    original, output = files
    embedded = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
        b'xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/" xmpMM:DocumentID="xmp.did:EMB" '
        b'xmpMM:InstanceID="xmp.iid:EMB"/></rdf:RDF></x:xmpmeta>'
    )
    result = write_xmp_sidecar(output, original, original_xmp=embedded, when=WHEN)
    derived = exiftool_read(result.path)["XMP-xmpMM:DerivedFrom"]
    assert derived["DocumentID"] == "xmp.did:EMB" and derived["InstanceID"] == "xmp.iid:EMB"


def test_digests_the_caller_has_are_used_only_in_lmds_algorithm(
    files: tuple[Path, Path],
) -> None:
    original, output = files
    computed = write_xmp_sidecar(output, original, when=WHEN)
    # The job row's digest of the output: the same instance, without reading the file again.
    known = write_xmp_sidecar(output, original, output_digest=digest_bytes(b"restored bytes"))
    assert known.instance_id == computed.instance_id
    # A legacy digest (b2:, bare sha256) would name the same file differently: recomputed.
    legacy = write_xmp_sidecar(output, original, output_digest="b2:" + "0" * 32)
    assert legacy.instance_id == computed.instance_id
    fake = "blake3:" + "f" * 64  # trusted as given: it is lmd's own algorithm
    assert write_xmp_sidecar(output, original, output_digest=fake).instance_id.endswith(
        "ffffffff-ffff-ffff-ffff-ffffffffffff"
    )


def test_an_unreadable_output_sidecar_is_left_as_it_is(files: tuple[Path, Path]) -> None:
    original, output = files
    broken = b"<x:xmpmeta><rdf:RDF>not closed"
    sidecar_path(output).write_bytes(broken)
    result = write_xmp_sidecar(output, original, when=WHEN)
    assert not result.written
    assert sidecar_path(output).read_bytes() == broken
    assert any("left as it is" in p for p in result.problems)


@needs_exiftool
def test_a_hostile_or_broken_target_sidecar_is_skipped_and_reported(
    files: tuple[Path, Path],
) -> None:
    original, output = files
    sidecar_path(original).write_bytes(
        b'<!DOCTYPE x [<!ENTITY a "aaaa">]><x:xmpmeta xmlns:x="adobe:ns:meta/"/>'
    )
    original.with_suffix(".xmp").write_bytes(b"\x00\x01 not xml")
    result = write_xmp_sidecar(output, original, when=WHEN)
    assert result.written and result.carried_from == []
    assert len(result.problems) == 2 and any("DTD" in p for p in result.problems)
    assert "XMP-xmpMM:DerivedFrom" in exiftool_read(result.path)


@needs_exiftool
def test_the_ext_sidecar_wins_over_the_stem_sidecar(files: tuple[Path, Path]) -> None:
    original, output = files
    exiftool_write(original.with_suffix(".xmp"), "-XMP-xmp:Rating=1", "-XMP-dc:Subject=mov")
    exiftool_write(sidecar_path(original), "-XMP-xmp:Rating=4")
    assert target_sidecars(original) == [sidecar_path(original), original.with_suffix(".xmp")]
    result = write_xmp_sidecar(output, original, when=WHEN)
    tags = exiftool_read(result.path)
    assert tags["XMP-xmp:Rating"] == 4 and tags["XMP-dc:Subject"] == ["mov"]


def test_the_write_is_atomic_and_leaves_no_temporary_file(files: tuple[Path, Path]) -> None:
    original, output = files
    write_xmp_sidecar(output, original, when=WHEN)
    assert sorted(p.name for p in output.parent.iterdir()) == [
        "IMG_0001.HEIC",
        "IMG_0001.HEIC.xmp",
    ]
