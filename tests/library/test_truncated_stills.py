"""A still cut short by an interrupted copy is refused with a reason, never half-decoded."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from daemon.files.errors import UnreadableFile
from daemon.library import synth
from daemon.library.media import load_still
from daemon.library.stills import read_still_meta

CID = "11111111-2222-3333-4444-555555555555"


def _heic(tmp_path: Path) -> bytes:
    rng = np.random.default_rng(0)
    rgb = (rng.random((192, 256, 3)) * 255).astype(np.uint8)
    path = synth.write_apple_still(tmp_path / "full.heic", rgb, CID, "heic")
    return path.read_bytes()


@pytest.mark.parametrize("keep", [0.5, 0.8, 0.95, 0.99])
def test_truncated_heic_is_refused(tmp_path: Path, keep: float) -> None:
    data = _heic(tmp_path)
    cut = tmp_path / "cut.heic"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(UnreadableFile):
        load_still(cut)


def test_truncation_hidden_by_an_open_ended_mdat_is_caught(tmp_path: Path) -> None:
    """An `mdat` of size 0 runs "to the end of the file", so the box walk cannot see the cut;
    the item locations in `iloc` still can."""
    data = bytearray(_heic(tmp_path))
    at = data.index(b"mdat") - 4
    assert at + struct.unpack(">I", data[at : at + 4])[0] == len(data)  # mdat is last
    data[at : at + 4] = b"\x00\x00\x00\x00"
    whole = tmp_path / "open.heic"
    whole.write_bytes(bytes(data))
    assert load_still(whole).shape == (192, 256, 3)  # the open-ended form itself is fine
    cut = tmp_path / "open-cut.heic"
    cut.write_bytes(bytes(data[: len(data) - 100]))
    with pytest.raises(UnreadableFile, match="truncated file"):
        read_still_meta(cut)
    with pytest.raises(UnreadableFile):
        load_still(cut)
