"""AAE adjustment sidecars: the LivePhotoKeyFrame time and the other adjustments.

An AAE is an XML or binary plist whose `adjustmentData` is raw DEFLATE (wbits -15) of UTF-8
JSON (osxphotos `adjustmentsinfo.py`). The key frame lives in the adjustment with
`identifier == "LivePhotoKeyFrame"` as a serialized CMTime `settings.time = {value, timescale}`;
decompiled evidence only, so a flat `{time, scale}` form is accepted too (formats page 1.4).
Sizes are capped before anything is parsed: the file (`MAX_AAE_BYTES`, checked from its size
before plistlib sees a byte), the inflated JSON (decompression bombs) and the adjustment
count (`daemon.files.limits`); XML plists with entity declarations are refused (plistlib
refuses them too), and the call runs within the per-file budget (`daemon.files.budget`).
"""

from __future__ import annotations

import json
import math
import plistlib
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon.files.binio import BoundedFile
from daemon.files.budget import visit, within_budget
from daemon.files.errors import UnreadableFile
from daemon.files.limits import MAX_AAE_BYTES, MAX_ADJUSTMENTS
from daemon.files.limits import MAX_AAE_JSON_BYTES as MAX_JSON_BYTES

KEYFRAME = "LivePhotoKeyFrame"
CMTIME_VALID = 0x1
CMTIME_NOT_FINITE = 0x4 | 0x8 | 0x10  # positive infinity, negative infinity, indefinite


@dataclass(frozen=True, slots=True)
class AaeInfo:
    keyframe_time: float | None
    other_adjustments: tuple[str, ...]  # every non-key-frame identifier, enabled or not
    format_identifier: str | None
    disabled: tuple[str, ...] = ()  # identifiers present but switched off

    @property
    def active_adjustments(self) -> tuple[str, ...]:
        """The other adjustments that actually change the render."""
        return tuple(a for a in self.other_adjustments if a not in self.disabled)


@within_budget
def read_aae(path: Path) -> AaeInfo:
    with BoundedFile(path) as f:
        if f.size > MAX_AAE_BYTES:
            raise UnreadableFile(f"AAE file of {f.size} bytes (at most {MAX_AAE_BYTES})")
        return parse_aae(f.read_at(0, f.size))


@within_budget
def parse_aae(raw: bytes) -> AaeInfo:
    """Decode AAE bytes (XML or binary plist)."""
    if len(raw) > MAX_AAE_BYTES:
        raise UnreadableFile(f"AAE of {len(raw)} bytes (at most {MAX_AAE_BYTES})")
    if b"<!ENTITY" in raw[:4096]:
        raise UnreadableFile("AAE plist declares entities")
    try:
        plist = plistlib.loads(raw)
    except Exception as exc:  # plistlib raises many types on garbage
        raise UnreadableFile(f"AAE is not a plist: {type(exc).__name__}") from None
    if not isinstance(plist, dict):
        raise UnreadableFile("AAE plist is not a dictionary")
    fmt = plist.get("adjustmentFormatIdentifier")
    fmt = fmt if isinstance(fmt, str) else None
    data = plist.get("adjustmentData")
    if not isinstance(data, bytes):
        raise UnreadableFile("AAE without adjustmentData")
    doc = _inflate_json(data)
    adjustments = doc.get("adjustments") if isinstance(doc, dict) else None
    if not isinstance(adjustments, list):
        if fmt and fmt != "com.apple.photo":
            return AaeInfo(None, (), fmt)
        raise UnreadableFile("AAE adjustmentData has no adjustments list")
    if len(adjustments) > MAX_ADJUSTMENTS:
        raise UnreadableFile(f"{len(adjustments)} adjustments (at most {MAX_ADJUSTMENTS})")
    visit("AAE adjustments", len(adjustments))
    keyframe = None
    others: list[str] = []
    disabled: list[str] = []
    for adj in adjustments:
        if not isinstance(adj, dict):
            continue
        ident = adj.get("identifier")
        if not isinstance(ident, str):
            continue
        enabled = adj.get("enabled", True) is not False
        if ident == KEYFRAME:
            if enabled:
                keyframe = _cmtime(adj.get("settings"))
            continue
        others.append(ident)
        if not enabled:
            disabled.append(ident)
    return AaeInfo(keyframe, tuple(others), fmt, tuple(disabled))


def _inflate_json(data: bytes) -> Any:
    for wbits in (-zlib.MAX_WBITS, zlib.MAX_WBITS):
        d = zlib.decompressobj(wbits)
        try:
            out = d.decompress(data, MAX_JSON_BYTES + 1)
        except zlib.error:
            continue
        if len(out) > MAX_JSON_BYTES or d.unconsumed_tail:
            raise UnreadableFile("AAE adjustmentData inflates too far")
        try:
            return json.loads(out.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise UnreadableFile("AAE adjustmentData is not JSON") from None
    raise UnreadableFile("AAE adjustmentData is not valid DEFLATE")


def _cmtime(settings: Any) -> float | None:
    """Seconds of the key-frame CMTime; None when its flags say it is not a finite time.

    CMTime flags: bit 0 valid, bits 2-4 +infinity, -infinity, indefinite. Such a time names no
    frame, so the AAE gives no T1 and the decision falls back to the next source.
    """
    if not isinstance(settings, dict):
        raise UnreadableFile("LivePhotoKeyFrame without settings")
    t = settings.get("time")
    if isinstance(t, dict):
        flags = t.get("flags")
        if (
            isinstance(flags, int)
            and not isinstance(flags, bool)
            and (not flags & CMTIME_VALID or flags & CMTIME_NOT_FINITE)
        ):
            return None
        value, scale = t.get("value"), t.get("timescale", t.get("scale"))
    else:
        value, scale = t, settings.get("scale", settings.get("timescale"))
    if isinstance(value, bool) or isinstance(scale, bool):
        raise UnreadableFile("LivePhotoKeyFrame time is not a number")
    if not isinstance(value, int | float) or not isinstance(scale, int | float) or scale <= 0:
        raise UnreadableFile("LivePhotoKeyFrame time is not a CMTime")
    try:
        seconds = float(value) / float(scale)
    except OverflowError:  # a JSON integer beyond float range
        raise UnreadableFile("LivePhotoKeyFrame time is out of range") from None
    if not math.isfinite(seconds) or seconds < 0 or seconds > 3600:
        raise UnreadableFile("LivePhotoKeyFrame time is out of range")
    return seconds
