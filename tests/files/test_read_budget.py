"""The per-file reading budget (issue 11 item 1): files whose every count and size passes its
own cap, but whose product would cost seconds or hundreds of MB, are refused with a reason.

Each hostile file here is small (KB to a few MB) and was accepted before the budget existed,
after seconds of CPU or hundreds of MB of parsed state.
"""

from __future__ import annotations

import plistlib
import struct
import tracemalloc
from pathlib import Path

import pytest

from daemon.files import bmff, budget, limits
from daemon.files.budget import BudgetExceeded, ReadBudget, file_budget
from daemon.files.errors import UnreadableFile
from daemon.library import aae, motion, quicktime, stills, synth

MVHD = bmff.full_box(b"mvhd", struct.pack(">IIII", 0, 0, 600, 600) + b"\0" * 80)
FTYP_HEIC = bmff.box(b"ftyp", b"heic\0\0\0\0mif1heic")
HDLR_PICT = bmff.full_box(b"hdlr", b"\0" * 4 + b"pict" + b"\0" * 13)


def _video_moov(stts_entries: int) -> bytes:
    stts = bmff.full_box(
        b"stts", struct.pack(">I", stts_entries) + struct.pack(">II", 1, 20) * stts_entries
    )
    mdhd = bmff.full_box(b"mdhd", struct.pack(">IIII", 0, 0, 600, 600) + b"\0" * 4)
    hdlr = bmff.full_box(b"hdlr", b"\0" * 4 + b"vide" + b"\0" * 13)
    minf = bmff.box(b"minf", bmff.box(b"stbl", stts))
    return bmff.box(b"moov", MVHD + bmff.box(b"trak", bmff.box(b"mdia", mdhd + hdlr + minf)))


def test_boxes_spread_over_many_containers_are_refused(tmp_path: Path) -> None:
    """1,000 `udta` of 1,000 empty boxes each: every container under `MAX_BOXES`, a million
    boxes in all (2.5 s of CPU before the budget; now refused after 100,000)."""
    inner = bmff.box(b"udta", bmff.box(b"free", b"") * 1000)
    path = tmp_path / "many.mov"
    path.write_bytes(bmff.box(b"moov", MVHD + inner * 1000))
    with pytest.raises(BudgetExceeded, match=r"more than 100000 structures .*box"):
        quicktime.read_mov_info(path)


def test_heif_extents_of_zero_bytes_are_refused(tmp_path: Path) -> None:
    """`iloc` with 0-byte offset and length fields: 4,096 items x 1,024 extents from 40 KB
    (4 million extents were listed before the budget)."""
    body = bytes([1, 0, 0, 0, 0x00, 0x00]) + struct.pack(">H", limits.MAX_ITEMS)
    body += (struct.pack(">HHH", 1, 0, 0) + struct.pack(">H", limits.MAX_EXTENTS)) * (
        limits.MAX_ITEMS
    )
    meta = bmff.full_box(
        b"meta", HDLR_PICT + bmff.full_box(b"iinf", b"\0\0") + bmff.box(b"iloc", body)
    )
    path = tmp_path / "extents.heic"
    path.write_bytes(FTYP_HEIC + meta)
    with pytest.raises(BudgetExceeded, match="HEIF item extents"):
        stills.read_still_meta(path)


def test_nested_motion_photo_directories_are_refused() -> None:
    """60 nested Container directories over 60,000 entries: each level walked them all again
    (2.3 s of CPU for a 540 KB packet before the budget)."""
    packet = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF'
        b' xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description'
        b' xmlns:Camera="http://ns.google.com/photos/1.0/camera/"'
        b' xmlns:Container="http://ns.google.com/photos/1.0/container/" Camera:MotionPhoto="1">'
        + b"<Container:Directory>" * 60
        + b"<rdf:li/>" * 60_000
        + b"</Container:Directory>" * 60
        + b"</rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    with pytest.raises(BudgetExceeded, match="Container directory"):
        motion.read_motion_xmp(packet)


def test_sample_table_is_summed_not_stored(tmp_path: Path) -> None:
    """A 50,000-entry `stts` (14 minutes of variable-frame-rate video) is summed in constant
    memory: the parse holds about the `moov` itself (400 KB here), where a list of the entries
    took about nine times that; a table past `MAX_SAMPLE_TIMES` is refused from its count."""
    path = tmp_path / "vfr.mov"
    moov = _video_moov(50_000)
    path.write_bytes(moov)
    tracemalloc.start()
    try:
        info = quicktime.read_mov_info(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.frame_count == 50_000
    assert info.frame_duration == pytest.approx(20 / 600)
    # the moov bytes, read once, plus small change: well under two copies of them
    assert peak < 2 * len(moov), peak
    too_long = bytearray(moov)
    count_at = moov.index(b"stts") + 8
    too_long[count_at : count_at + 4] = struct.pack(">I", limits.MAX_SAMPLE_TIMES + 1)
    path.write_bytes(bytes(too_long))
    with pytest.raises(UnreadableFile, match="sample-to-time table of 1000001 entries"):
        quicktime.read_mov_info(path)


def test_aae_size_is_checked_before_plistlib_parses_it() -> None:
    """A well-formed AAE padded past `MAX_AAE_BYTES` is refused from its length, whoever
    hands it over (it used to be parsed whole when given as bytes)."""
    plist = plistlib.loads(synth.aae_bytes(0.5))
    plist["padding"] = "x" * limits.MAX_AAE_BYTES
    raw = plistlib.dumps(plist)
    with pytest.raises(UnreadableFile, match="at most"):
        aae.parse_aae(raw)


def test_heif_mime_item_name_is_not_split_whole(tmp_path: Path) -> None:
    """A `mime` item whose name is megabytes of NULs: only the content type is split off (a
    full split listed every NUL, 8 bytes of list per byte of box)."""
    name = b"\0" * (2 * 1024 * 1024)
    infe = bmff.full_box(b"infe", struct.pack(">HH", 1, 0) + b"mime" + name, version=2)
    iinf = bmff.full_box(b"iinf", struct.pack(">H", 1) + infe)
    iloc = bmff.full_box(b"iloc", bytes([0x44, 0x00]) + struct.pack(">H", 0), version=0)
    path = tmp_path / "names.heic"
    path.write_bytes(FTYP_HEIC + bmff.full_box(b"meta", HDLR_PICT + iinf + iloc))
    tracemalloc.start()
    try:
        stills.read_still_meta(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * len(name), peak  # the meta box and one slice of it; a split took 8x


def test_budget_is_shared_by_nested_readers_and_fresh_per_call(tmp_path: Path) -> None:
    """Readers called inside another reader's call spend from its budget; the next top-level
    call starts a new one."""
    rgb = synth.np.zeros((16, 16, 3), synth.np.uint8)
    path = synth.write_apple_still(tmp_path / "a.heic", rgb, "0" * 8, "heic")
    with file_budget(ReadBudget(max_structures=3)), pytest.raises(BudgetExceeded):
        stills.read_still_meta(path)
    assert budget.current() is None
    assert stills.read_still_meta(path).format == "heif"
    with file_budget() as outer:
        stills.read_still_meta(path)
        spent = outer.structures
        stills.read_still_meta(path)
        assert outer.structures == 2 * spent > 0


def test_cpu_and_byte_budgets_refuse_with_their_reason(tmp_path: Path) -> None:
    path = tmp_path / "live.mov"
    path.write_bytes(_video_moov(1))
    with file_budget(ReadBudget(cpu_seconds=-1.0)), pytest.raises(BudgetExceeded, match="CPU"):
        quicktime.read_mov_info(path)
    with file_budget(ReadBudget(max_bytes=64)), pytest.raises(BudgetExceeded, match="64 bytes"):
        quicktime.read_mov_info(path)
    assert quicktime.read_mov_info(path).frame_count == 1
