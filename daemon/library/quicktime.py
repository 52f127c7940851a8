"""QuickTime/MP4 `moov` reading: content identifier, still-image-time, video timing.

Only the `moov` box is read (capped at `MAX_MOOV_BYTES`), never the media data; every box,
key and sample-table entry counts against the call's per-file budget (`daemon.files.budget`,
limits in `daemon.files.limits`), and the sample-to-time table is summed, never stored. The
still-image-time is the presentation time of the single sample of the `mebx` track whose key
table names `com.apple.quicktime.still-image-time`, *with the track's edit list applied*:
Apple shifts that 1-tick sample with a leading empty edit. exiftool reports the `stts` time
(ignoring `elst`) and ffprobe/PyAV cannot see the key names, hence this parser (formats page
1.2). Works on an embedded MP4 too, through `offset`/`length`.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

from daemon.files import bmff
from daemon.files.binio import BoundedFile, i32be, i64be, u8, u32be, u64be
from daemon.files.budget import visit, within_budget
from daemon.files.errors import UnreadableFile
from daemon.files.limits import (
    MAX_EDITS,
    MAX_METADATA_KEYS,
    MAX_MOOV_BYTES,
    MAX_SAMPLE_TIMES,
    MAX_TIME_S,
    MAX_TRACKS,
)

_STTS_ENTRY = struct.Struct(">II")
CONTENT_ID_KEY = b"com.apple.quicktime.content.identifier"
STILL_TIME_KEY = b"com.apple.quicktime.still-image-time"


@dataclass(frozen=True, slots=True)
class MovInfo:
    """Timing and pairing facts of one movie."""

    content_identifier: str | None
    still_image_time: float | None
    frame_duration: float | None
    duration: float | None
    width: int | None = None
    height: int | None = None
    frame_count: int | None = None


@dataclass(slots=True)
class _Track:
    handler: bytes = b""
    timescale: int = 0
    edits: list[tuple[int, int]] | None = None  # (segment duration in movie ts, media time)
    frame_count: int = 0  # samples in the sample-to-time table
    sample_ticks: int = 0  # their summed durations, in the track's timescale
    sample_format: bytes = b""
    keys: list[bytes] | None = None
    width: int = 0
    height: int = 0
    media_duration: int = 0


@within_budget
def read_mov_info(path: Path, offset: int = 0, length: int | None = None) -> MovInfo:
    """Parse the `moov` of `path` (or of the embedded movie at `offset`, `length`)."""
    with BoundedFile(path) as f:
        end = f.size if length is None else offset + length
        if offset < 0 or end > f.size or end - offset < 8:
            raise UnreadableFile("movie range outside the file")
        moov = None
        for box in bmff.file_boxes(f, offset, end):
            if box.type == b"moov":
                moov = box
                break
        if moov is None:
            raise UnreadableFile("no moov box")
        if moov.end - moov.start > MAX_MOOV_BYTES:
            raise UnreadableFile(
                f"moov box of {moov.end - moov.start} bytes (at most {MAX_MOOV_BYTES})"
            )
        data = f.read_at(moov.start, moov.end - moov.start)
    return parse_moov(data)


@within_budget
def parse_moov(data: bytes) -> MovInfo:
    """Parse a whole `moov` box given as bytes (header included)."""
    root = next(bmff.boxes(data), None)
    if root is None or root.type != b"moov":
        raise UnreadableFile("not a moov box")
    bmff.check_depth(data, root)
    mvhd = bmff.child(data, root, b"mvhd")
    if mvhd is None:
        raise UnreadableFile("moov without mvhd")
    movie_ts, movie_dur = _timescale_duration(data, mvhd.payload, movie=True)
    if movie_ts <= 0:
        raise UnreadableFile("movie timescale is zero")
    cid = _content_identifier(data, root)
    traks = bmff.children(data, root, b"trak")
    if len(traks) > MAX_TRACKS:
        raise UnreadableFile(f"{len(traks)} tracks (at most {MAX_TRACKS})")
    tracks = [_track(data, t) for t in traks]
    still = None
    video = None
    for t in tracks:
        if t.sample_format == b"mebx" and t.keys and STILL_TIME_KEY in t.keys and still is None:
            still = _first_sample_time(t, movie_ts)
        if t.handler == b"vide" and video is None:
            video = t
    frame_dur = count = None
    width = height = None
    if video is not None and video.timescale > 0 and video.frame_count:
        count, total = video.frame_count, video.sample_ticks
        if total > 0:
            frame_dur = total / count / video.timescale
        width, height = video.width or None, video.height or None
    duration = movie_dur / movie_ts if movie_dur else None
    return MovInfo(cid, still, frame_dur, duration, width, height, count)


def _timescale_duration(data: bytes, p: int, *, movie: bool) -> tuple[int, int]:
    version = data[p] if p < len(data) else 0
    if version == 1:
        return u32be(data, p + 20), u64be(data, p + 24)
    return u32be(data, p + 12), u32be(data, p + 16)


def _content_identifier(data: bytes, moov: bmff.Box) -> str | None:
    meta = bmff.child(data, moov, b"meta")
    if meta is None:
        return None
    skip = 4 if bmff.meta_is_full(data, meta) else 0
    keys_box = bmff.child(data, meta, b"keys", skip)
    ilst = bmff.child(data, meta, b"ilst", skip)
    if keys_box is None or ilst is None:
        return None
    count = u32be(data, keys_box.payload + 4)
    if count > MAX_METADATA_KEYS:
        raise UnreadableFile(f"{count} metadata keys (at most {MAX_METADATA_KEYS})")
    visit("metadata keys", count)
    keys: list[bytes] = []
    p = keys_box.payload + 8
    for _ in range(count):
        size = u32be(data, p)
        if size < 8 or p + size > keys_box.end:
            raise UnreadableFile("metadata key past the keys box")
        keys.append(data[p + 8 : p + size])
        p += size
    if CONTENT_ID_KEY not in keys:
        return None
    index = keys.index(CONTENT_ID_KEY) + 1
    for item in bmff.boxes(data, ilst.payload, ilst.end):
        if u32be(item.type, 0) != index:
            continue
        data_box = bmff.child(data, item, b"data")
        if data_box is None:
            return None
        raw = data[data_box.payload + 8 : data_box.end]
        return raw.decode("utf-8", "replace").strip("\x00 ") or None
    return None


def _track(data: bytes, trak: bmff.Box) -> _Track:
    t = _Track()
    parts = bmff.first_children(data, trak)
    tkhd = parts.get(b"tkhd")
    if tkhd is not None:
        v = u8(data, tkhd.payload)
        wpos = tkhd.payload + (88 if v == 1 else 76)
        if wpos + 8 <= tkhd.end:
            t.width, t.height = u32be(data, wpos) >> 16, u32be(data, wpos + 4) >> 16
    edts = parts.get(b"edts")
    elst = bmff.child(data, edts, b"elst") if edts is not None else None
    if elst is not None:
        t.edits = _edits(data, elst)
    mdia = parts.get(b"mdia")
    if mdia is None:
        return t
    media = bmff.first_children(data, mdia)
    mdhd = media.get(b"mdhd")
    if mdhd is not None:
        t.timescale, t.media_duration = _timescale_duration(data, mdhd.payload, movie=False)
    hdlr = media.get(b"hdlr")
    if hdlr is not None:
        t.handler = data[hdlr.payload + 8 : hdlr.payload + 12]
    minf = media.get(b"minf")
    stbl = bmff.child(data, minf, b"stbl") if minf is not None else None
    if stbl is None:
        return t
    table = bmff.first_children(data, stbl)
    stts = table.get(b"stts")
    if stts is not None:
        t.frame_count, t.sample_ticks = _sample_times(data, stts)
    stsd = table.get(b"stsd")
    if stsd is not None:
        entry = next(bmff.boxes(data, stsd.payload + 8, stsd.end), None)
        if entry is not None:
            t.sample_format = entry.type
            if entry.type == b"mebx":
                keys = bmff.child(data, entry, b"keys", 8)
                if keys is not None:
                    t.keys = _mebx_keys(data, keys)
    return t


def _sample_times(data: bytes, stts: bmff.Box) -> tuple[int, int]:
    """(samples, summed durations) of a sample-to-time table, summed as it is read: a table
    can hold millions of entries, which as a list of tuples would cost hundreds of MB."""
    n = u32be(data, stts.payload + 4)
    if n > MAX_SAMPLE_TIMES:
        raise UnreadableFile(f"sample-to-time table of {n} entries (at most {MAX_SAMPLE_TIMES})")
    start = stts.payload + 8
    if start + 8 * n > stts.end:
        raise UnreadableFile("stts entries past the box end")
    visit("a sample-to-time table")
    count = ticks = 0
    for samples, duration in _STTS_ENTRY.iter_unpack(memoryview(data)[start : start + 8 * n]):
        count += samples
        ticks += samples * duration
    return count, ticks


def _mebx_keys(data: bytes, keys: bmff.Box) -> list[bytes]:
    """Key names of a `mebx` key table (`keyd` values without their namespace)."""
    out = []
    for entry in bmff.boxes(data, keys.payload, keys.end):
        keyd = bmff.child(data, entry, b"keyd")
        if keyd is not None:
            out.append(data[keyd.payload + 4 : keyd.end])
    return out


def _edits(data: bytes, elst: bmff.Box) -> list[tuple[int, int]]:
    p = elst.payload
    version = u8(data, p)
    n = u32be(data, p + 4)
    if n > MAX_EDITS:
        raise UnreadableFile(f"edit list with {n} entries (at most {MAX_EDITS})")
    entry = 20 if version == 1 else 12
    if 8 + n * entry > elst.end - p:
        raise UnreadableFile("edit list past the box end")
    edits = []
    for i in range(n):
        q = p + 8 + i * entry
        if version == 1:
            edits.append((u64be(data, q), i64be(data, q + 8)))
        else:
            edits.append((u32be(data, q), i32be(data, q + 4)))
    return edits


def _first_sample_time(t: _Track, movie_ts: int) -> float:
    """Movie-timeline time of the track's first sample, edit list applied."""
    if t.timescale <= 0:
        raise UnreadableFile("metadata track timescale is zero")
    media_t = 0  # the first sample's decode time is always 0
    if not t.edits:
        return 0.0
    elapsed = 0.0
    for seg_dur, media_time in t.edits:
        seg = seg_dur / movie_ts
        if media_time == -1:
            elapsed += seg
        else:
            start = media_time / t.timescale
            if media_time <= media_t and (seg_dur == 0 or media_t / t.timescale < start + seg):
                elapsed += media_t / t.timescale - start
                break
            elapsed += seg
        if not math.isfinite(elapsed) or elapsed > MAX_TIME_S:
            raise UnreadableFile("absurd edit list")
    else:
        raise UnreadableFile("edit list never shows the still-image-time sample")
    if elapsed < 0 or elapsed > MAX_TIME_S:
        raise UnreadableFile("absurd edit list")
    return elapsed
