"""Carrying a movie's timed-metadata tracks and `moov/meta` keys into a re-encoded movie.

Why by hand: what pairs a Live Photo's video with its still is the QuickTime content identifier
(`com.apple.quicktime.content.identifier` in `moov/meta` keys) and the still-image-time timed
metadata track (`mebx`, placed by its edit list). PyAV cannot write `mebx` tracks, ffmpeg's
remux rewrites them without their keys ("Unknown hdlr_type for mebx") and exiftool cannot write
timed metadata (formats page 1.2, 3.1). So the restored clip is encoded by PyAV (video, and the
audio remuxed packet for packet), and then its `moov` is rebuilt here with:

- the source's `moov/meta` box as it is (every key: content identifier, make, model, ...);
- every source track whose handler is `meta` (Apple's `mebx` tracks, Google's motion tracks),
  its samples copied byte for byte into a new `mdat` appended after the encoded media, with
  new track IDs, chunk offsets pointing at the copies, durations and edit-list segment
  durations converted from the source's movie timescale to the new one (so a still-image-time
  at 1.468 s stays at 1.468 s), and track references (`tref`, e.g. `cdsc` → the video track)
  renumbered to the new movie's tracks.

Everything is built with `daemon.files.bmff`'s box writers; sizes are checked against hard caps
so a crafted source cannot make lmd copy gigabytes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from daemon.files import bmff
from daemon.files.binio import i32be, i64be, u8, u32be, u64be
from daemon.files.errors import UnreadableFile

MAX_COPIED_BYTES = 32 * 1024 * 1024
"""Most sample bytes carried over (Apple's metadata tracks hold kilobytes)."""
MAX_ENTRIES = 1_000_000
"""Most samples or chunks in one carried track."""

ReadAt = Callable[[int, int], bytes]
"""`read(offset, length)`: exact bytes of the source movie (a file or an embedded movie)."""

_CONTAINERS = {b"trak", b"mdia", b"minf", b"stbl", b"edts"}


@dataclass(frozen=True, slots=True)
class _Movie:
    version: int
    timescale: int
    duration: int
    next_track_id: int
    tracks: list[tuple[int, bytes, bmff.Box]]  # (track ID, handler, trak box)


def _mvhd(data: bytes, root: bmff.Box) -> tuple[bmff.Box, int, int, int, int]:
    mvhd = bmff.child(data, root, b"mvhd")
    if mvhd is None:
        raise UnreadableFile("moov without mvhd")
    p = mvhd.payload
    version = u8(data, p)
    if version == 1:
        timescale, duration = u32be(data, p + 20), u64be(data, p + 24)
        next_id = u32be(data, p + 108)
    else:
        timescale, duration = u32be(data, p + 12), u32be(data, p + 16)
        next_id = u32be(data, p + 96)
    if timescale == 0:
        raise UnreadableFile("movie timescale is zero")
    return mvhd, version, timescale, duration, next_id


def _track_id(data: bytes, trak: bmff.Box) -> int:
    tkhd = bmff.child(data, trak, b"tkhd")
    if tkhd is None:
        raise UnreadableFile("track without tkhd")
    return u32be(data, tkhd.payload + (20 if u8(data, tkhd.payload) == 1 else 12))


def _handler(data: bytes, trak: bmff.Box) -> bytes:
    hdlr = bmff.find_path(data, trak, [b"mdia", b"hdlr"])
    return data[hdlr.payload + 8 : hdlr.payload + 12] if hdlr is not None else b""


def _movie(data: bytes) -> tuple[bmff.Box, _Movie]:
    root = next(bmff.boxes(data), None)
    if root is None or root.type != b"moov":
        raise UnreadableFile("not a moov box")
    bmff.check_depth(data, root)
    _, version, timescale, duration, next_id = _mvhd(data, root)
    traks = bmff.children(data, root, b"trak")
    tracks = [(_track_id(data, t), _handler(data, t), t) for t in traks]
    return root, _Movie(version, timescale, duration, next_id, tracks)


def _chunks(data: bytes, stbl: bmff.Box) -> list[tuple[int, int]]:
    """(offset, size) of every chunk of a track, from stco/co64, stsc and stsz."""
    table = bmff.first_children(data, stbl)
    stsz, stsc = table.get(b"stsz"), table.get(b"stsc")
    offsets_box = table.get(b"stco") or table.get(b"co64")
    if stsz is None or stsc is None or offsets_box is None:
        raise UnreadableFile("metadata track without a complete sample table")
    constant, count = u32be(data, stsz.payload + 4), u32be(data, stsz.payload + 8)
    if count > MAX_ENTRIES:
        raise UnreadableFile(f"metadata track with {count} samples")
    sizes = [constant] * count if constant else [
        u32be(data, stsz.payload + 12 + 4 * i) for i in range(count)]
    wide = offsets_box.type == b"co64"
    n_chunks = u32be(data, offsets_box.payload + 4)
    if n_chunks > MAX_ENTRIES:
        raise UnreadableFile(f"metadata track with {n_chunks} chunks")
    offsets = [
        u64be(data, offsets_box.payload + 8 + 8 * i) if wide
        else u32be(data, offsets_box.payload + 8 + 4 * i)
        for i in range(n_chunks)
    ]
    runs = [
        (u32be(data, stsc.payload + 8 + 12 * i), u32be(data, stsc.payload + 12 + 12 * i))
        for i in range(min(u32be(data, stsc.payload + 4), MAX_ENTRIES))
    ]
    out, sample = [], 0
    for index, offset in enumerate(offsets, start=1):
        per_chunk = next((n for first, n in reversed(runs) if first <= index), 0)
        take = sizes[sample : sample + per_chunk]
        if len(take) < per_chunk:
            raise UnreadableFile("sample table lists more samples than stsz holds")
        sample += per_chunk
        out.append((offset, sum(take)))
    return out


def _rebuild(data: bytes, box: bmff.Box, edit: Callable[[bmff.Box], bytes | None]) -> bytes:
    """`box` re-serialised with `edit(child)` replacing any descendant it answers for."""
    replaced = edit(box)
    if replaced is not None:
        return replaced
    if box.type not in _CONTAINERS:
        return data[box.start : box.end]
    inner = b"".join(_rebuild(data, c, edit) for c in bmff.boxes(data, box.payload, box.end))
    return bmff.box(box.type, inner)


def _rescaled(value: int, source_ts: int, target_ts: int) -> int:
    return (value * target_ts + source_ts // 2) // source_ts


def _carry_track(
    data: bytes,
    trak: bmff.Box,
    new_id: int,
    id_map: dict[int, int],
    timescales: tuple[int, int],
    chunk_offsets: list[int],
) -> bytes:
    """One source track with its new ID, offsets, timescale and references."""
    source_ts, target_ts = timescales

    def edit(box: bmff.Box) -> bytes | None:
        p = box.payload
        if box.type == b"tkhd":
            raw = bytearray(data[box.start : box.end])
            head = p - box.start
            version = u8(data, p)
            id_at, dur_at = (head + 20, head + 28) if version == 1 else (head + 12, head + 20)
            struct.pack_into(">I", raw, id_at, new_id)
            if version == 1:
                struct.pack_into(">Q", raw, dur_at,
                                 _rescaled(u64be(data, box.start + dur_at), *timescales))
            else:
                duration = _rescaled(u32be(data, box.start + dur_at), *timescales)
                struct.pack_into(">I", raw, dur_at, min(duration, 0xFFFFFFFF))
            return bytes(raw)
        if box.type == b"elst":
            version, count = u8(data, p), u32be(data, p + 4)
            size = 20 if version == 1 else 12
            if 8 + count * size > box.end - p:
                raise UnreadableFile("edit list past its box")
            entries = b""
            for i in range(count):
                q = p + 8 + i * size
                if version == 1:
                    duration, media_time = u64be(data, q), i64be(data, q + 8)
                    rate = data[q + 16 : q + 20]
                    entries += struct.pack(">Qq", _rescaled(duration, source_ts, target_ts),
                                           media_time) + rate
                else:
                    duration, media_time = u32be(data, q), i32be(data, q + 4)
                    rate = data[q + 8 : q + 12]
                    entries += struct.pack(">Ii", min(_rescaled(duration, source_ts, target_ts),
                                                      0xFFFFFFFF), media_time) + rate
            return bmff.full_box(b"elst", struct.pack(">I", count) + entries, version=version)
        if box.type == b"tref":
            refs = b""
            for ref in bmff.boxes(data, p, box.end):
                ids = [u32be(data, q) for q in range(ref.payload, ref.end - 3, 4)]
                kept = [id_map[i] for i in ids if i in id_map]
                if kept:
                    refs += bmff.box(ref.type, b"".join(struct.pack(">I", i) for i in kept))
            return bmff.box(b"tref", refs)
        if box.type in (b"stco", b"co64"):
            if max(chunk_offsets, default=0) > 0xFFFFFFFF:
                body = b"".join(struct.pack(">Q", o) for o in chunk_offsets)
                return bmff.full_box(b"co64", struct.pack(">I", len(chunk_offsets)) + body)
            body = b"".join(struct.pack(">I", o) for o in chunk_offsets)
            return bmff.full_box(b"stco", struct.pack(">I", len(chunk_offsets)) + body)
        return None

    return _rebuild(data, trak, edit)


def _with_mvhd(data: bytes, mvhd: bmff.Box, version: int, duration: int, next_id: int) -> bytes:
    raw = bytearray(data[mvhd.start : mvhd.end])
    head = mvhd.payload - mvhd.start
    if version == 1:
        struct.pack_into(">Q", raw, head + 24, duration)
        struct.pack_into(">I", raw, head + 108, next_id)
    else:
        struct.pack_into(">I", raw, head + 16, min(duration, 0xFFFFFFFF))
        struct.pack_into(">I", raw, head + 96, next_id)
    return bytes(raw)


def carry_metadata(
    encoded_moov: bytes, source_moov: bytes, read_source: ReadAt, mdat_offset: int
) -> tuple[bytes, bytes]:
    """(`mdat` box to append at `mdat_offset`, new `moov`) for the encoded movie.

    `encoded_moov` is the moov PyAV wrote; `source_moov` the original's, whose sample bytes
    `read_source` reads. The new moov is the encoded one with the source's `moov/meta`
    (replacing any the encoder wrote) and the source's metadata tracks added. Raises
    `UnreadableFile` when the source's tables are inconsistent or too large to carry.
    """
    new_root, new = _movie(encoded_moov)
    src_root, src = _movie(source_moov)
    id_map: dict[int, int] = {}
    for handler in (b"vide", b"soun"):
        ours = [tid for tid, h, _ in new.tracks if h == handler]
        theirs = [tid for tid, h, _ in src.tracks if h == handler]
        id_map.update(zip(theirs, ours, strict=False))
    carried = [(tid, trak) for tid, handler, trak in src.tracks if handler == b"meta"]
    next_id = max([new.next_track_id, *(tid + 1 for tid, _, _ in new.tracks)])
    for tid, _ in carried:
        id_map[tid] = next_id
        next_id += 1

    payload = bytearray()
    header = 16 if mdat_offset > 0xFFFFFFFF else 8
    traks: list[bytes] = []
    for tid, trak in carried:
        stbl = bmff.find_path(source_moov, trak, [b"mdia", b"minf", b"stbl"])
        if stbl is None:
            raise UnreadableFile("metadata track without a sample table")
        offsets = []
        for offset, size in _chunks(source_moov, stbl):
            if len(payload) + size > MAX_COPIED_BYTES:
                raise UnreadableFile("metadata tracks too large to carry over")
            offsets.append(mdat_offset + header + len(payload))
            payload += read_source(offset, size)
        traks.append(_carry_track(source_moov, trak, id_map[tid], id_map,
                                  (src.timescale, new.timescale), offsets))
    mdat = bmff.box(b"mdat", bytes(payload)) if payload else b""
    if mdat and len(mdat) - len(payload) != header:  # the 64-bit size form was needed
        raise UnreadableFile("metadata too large for one box")

    durations = [new.duration]
    for trak_bytes in traks:
        tkhd = bmff.child(trak_bytes, bmff.Box(b"trak", 0, 8, len(trak_bytes)), b"tkhd")
        if tkhd is not None:
            v = u8(trak_bytes, tkhd.payload)
            durations.append(u64be(trak_bytes, tkhd.payload + 28) if v == 1
                             else u32be(trak_bytes, tkhd.payload + 20))
    source_meta = bmff.child(source_moov, src_root, b"meta")
    mvhd = bmff.child(encoded_moov, new_root, b"mvhd")
    assert mvhd is not None
    children = []
    for child in bmff.boxes(encoded_moov, new_root.payload, new_root.end):
        if child.type == b"mvhd":
            children.append(_with_mvhd(encoded_moov, child, new.version, max(durations), next_id))
        elif child.type == b"meta" and source_meta is not None:
            continue
        else:
            children.append(encoded_moov[child.start : child.end])
    if source_meta is not None:
        children.append(source_moov[source_meta.start : source_meta.end])
    children.extend(traks)
    return mdat, bmff.box(b"moov", b"".join(children))
