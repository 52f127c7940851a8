"""AAE key-frame CMTime decoding: both serialised forms, flags, and out-of-range numbers."""

from __future__ import annotations

import json
import plistlib
import zlib
from typing import Any

import pytest

from daemon.files.errors import UnreadableFile
from daemon.library.aae import parse_aae


def _aae(settings: Any) -> bytes:
    doc = {
        "adjustments": [
            {"identifier": "LivePhotoKeyFrame", "enabled": True, "settings": settings},
            {"identifier": "SmartTone", "enabled": True, "settings": {}},
        ]
    }
    comp = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    payload = comp.compress(json.dumps(doc).encode()) + comp.flush()
    return plistlib.dumps(
        {"adjustmentData": payload, "adjustmentFormatIdentifier": "com.apple.photo"}
    )


@pytest.mark.parametrize(
    "settings",
    [
        {"time": {"value": 300, "timescale": 600, "flags": 1, "epoch": 0}},
        {"time": {"value": 300, "timescale": 600}},
        {"time": 300, "scale": 600},
        {"time": 300, "timescale": 600},
    ],
    ids=["cmtime", "cmtime-no-flags", "flat-scale", "flat-timescale"],
)
def test_keyframe_forms(settings: Any) -> None:
    info = parse_aae(_aae(settings))
    assert info.keyframe_time == 0.5
    assert info.other_adjustments == ("SmartTone",)


@pytest.mark.parametrize(
    "flags", [0, 1 | 4, 1 | 8, 1 | 16], ids=["invalid", "+inf", "-inf", "indef"]
)
def test_keyframe_time_that_names_no_frame_gives_no_t1(flags: int) -> None:
    info = parse_aae(_aae({"time": {"value": 300, "timescale": 600, "flags": flags, "epoch": 0}}))
    assert info.keyframe_time is None
    assert info.other_adjustments == ("SmartTone",)


@pytest.mark.parametrize(
    "time",
    [{"value": 10**400, "timescale": 600}, {"value": 600, "timescale": 10**400}],
    ids=["huge-value", "huge-timescale"],
)
def test_integers_beyond_float_range_are_unreadable(time: dict[str, int]) -> None:
    with pytest.raises(UnreadableFile):
        parse_aae(_aae({"time": time}))
