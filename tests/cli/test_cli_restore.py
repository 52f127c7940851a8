"""`lmd restore` (issue 13 item 6): `--video` takes the video's frame at the original key time
(its still-image-time, or `--t0`) as the low-quality reference, as the queue does; a low flow
confidence prints a warning that says what it means; `--compare` writes the one comparison
layout, panels labelled."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from daemon import comparison
from daemon.cli import main
from daemon.library.media import decode_frame_at, load_still
from daemon.library.quicktime import read_mov_info
from tests.foundation.lmd_entry import flat, run_lmd


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from daemon.demo import build_sample_library

    folder = tmp_path_factory.mktemp("sample")
    # large enough for the flow to find its way (at 96×72 it aligns nothing, video or not)
    build_sample_library(folder, count=2, video_size=(160, 120), scale=2)
    return folder / "2026"


def test_video_frame_at_the_still_image_time_is_the_low_quality_reference(
    tmp_path: Path, sample: Path
) -> None:
    import core
    from core.api import RestoreRequest
    from daemon.output.image import to_uint8

    reference, frame, video = (sample / n for n in ("IMG_1201.HEIC", "IMG_E1201.HEIC",
                                                    "IMG_1201.MOV"))
    out = tmp_path / "restored.png"
    done = run_lmd(tmp_path, "--config", "/dev/null", "restore", "--reference", str(reference),
                   "--frame", str(frame), "--video", str(video), "-o", str(out), "--json")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    t0 = read_mov_info(video).still_image_time
    assert t0 is not None and shown["t0"] == pytest.approx(t0)
    assert shown["reference_lq"] == "video" and shown["warnings"] == []

    # the same restoration as the worker runs it: 8-bit stills and the float frame at T0
    expected = core.restore(RestoreRequest(
        target=load_still(frame, dtype=np.uint8), reference=load_still(reference, dtype=np.uint8),
        reference_lq=decode_frame_at(video, t0), restorer="guided",
    ))
    np.testing.assert_array_equal(load_still(out, dtype=np.uint8), to_uint8(expected.image))
    without = core.restore(RestoreRequest(
        target=load_still(frame, dtype=np.uint8), reference=load_still(reference, dtype=np.uint8),
        restorer="guided",
    ))
    assert not np.array_equal(to_uint8(without.image), to_uint8(expected.image))


def test_low_flow_confidence_warns_and_the_comparison_is_labelled(
    tmp_path: Path, sample: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """In-process through `main`, the `lmd` script's function (the script: the test above)."""
    monkeypatch.delenv("LMD_CONFIG", raising=False)
    monkeypatch.setenv("LMD_STATE_DIR", str(tmp_path / "state"))
    # the reference of one photo against the frame of another: nothing aligns
    out, compare = tmp_path / "restored.png", tmp_path / "compare.png"
    code = main(["--config", "/dev/null", "restore",
                 "--reference", str(sample / "IMG_1201.HEIC"),
                 "--frame", str(sample / "IMG_E1202.HEIC"), "-o", str(out),
                 "--compare", str(compare)])
    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr
    confidence = float(stdout.split("flow confidence ")[1].split(",")[0])
    assert confidence < 0.5
    warning = flat(stderr)
    assert f"warning: flow confidence {confidence:.2f} is under 0.5" in warning
    assert "could not be aligned" in warning and "--video" in warning

    picture = load_still(compare, dtype=np.uint8)
    restored = load_still(out, dtype=np.uint8)
    h, w = restored.shape[:2]
    height = min(comparison.PANEL_HEIGHT, h)
    panel_w = round(w * height / h)
    band = comparison.LABEL_HEIGHT
    assert picture.shape == (2 * (band + height) + comparison.GAP,
                             3 * panel_w + 2 * comparison.GAP, 3)
    for row_top in (0, band + height + comparison.GAP):  # both rows: a label over each panel
        for i in range(3):
            left = i * (panel_w + comparison.GAP)
            label = picture[row_top:row_top + band, left:left + panel_w].astype(int)
            text = (label.min(axis=2) > 150).mean()  # light text on the dark band
            assert 0.01 < text < 0.5, (row_top, i)
    # the bottom middle panel is the restoration at 1:1: its central region, pixel for pixel
    top = band + height + comparison.GAP + band
    crop = picture[top:top + height, panel_w + comparison.GAP:2 * panel_w + comparison.GAP]
    ch, cw = min(height, h), min(panel_w, w)
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    # PNG is lossless; the comparison is the same pixels
    np.testing.assert_array_equal(crop[:ch, :cw], restored[y0:y0 + ch, x0:x0 + cw])
