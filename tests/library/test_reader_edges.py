"""Hand-built edge cases the random fuzzing missed: each must be `UnreadableFile`, not a crash."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from daemon.files.errors import UnreadableFile
from daemon.library import quicktime, stills


def _box(btype: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + btype + payload


def _full(btype: bytes, payload: bytes) -> bytes:
    return _box(btype, b"\0\0\0\0" + payload)


MVHD = _full(b"mvhd", struct.pack(">IIII", 0, 0, 600, 600) + b"\0" * 80)


@pytest.mark.parametrize(
    "last",
    [
        _box(b"trak", _box(b"edts", _box(b"elst", b""))),  # elst without its version byte
        _box(b"trak", _box(b"tkhd", b"")),  # tkhd without its version byte
    ],
    ids=["empty-elst", "empty-tkhd"],
)
def test_empty_full_box_at_the_end_of_moov(last: bytes) -> None:
    with pytest.raises(UnreadableFile):
        quicktime.parse_moov(_box(b"moov", MVHD + last))


HDLR = _box(b"hdlr", b"\0" * 20)
ILOC = _full(b"iloc", b"\x44\x00\x00\x00")


@pytest.mark.parametrize(
    "meta_children",
    [
        ILOC + _box(b"iinf", b""),  # iinf without its version byte
        _full(b"iinf", b"\0\0") + _box(b"iloc", b""),  # iloc without its version byte
        ILOC + _full(b"iinf", b"\0\1" + _box(b"infe", b"")),  # infe without its version byte
    ],
    ids=["empty-iinf", "empty-iloc", "empty-infe"],
)
def test_empty_full_box_at_the_end_of_heif_meta(tmp_path: Path, meta_children: bytes) -> None:
    ftyp = _box(b"ftyp", b"heic\0\0\0\0mif1heic")
    path = tmp_path / "x.heic"
    path.write_bytes(ftyp + _full(b"meta", HDLR + meta_children))
    with pytest.raises(UnreadableFile):
        stills.read_still_meta(path)
