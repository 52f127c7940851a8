"""`lmd restore` end to end on small files written in the test."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from daemon.cli import main


def _write(path: Path, rgb: np.ndarray) -> Path:
    Image.fromarray((np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)).save(path)
    return path


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    library = tmp_path / "library"
    library.mkdir()
    cfg = tmp_path / "lmd.toml"
    cfg.write_text(f'library = "{library}"\nstate_dir = "{tmp_path / "state"}"\n')
    monkeypatch.setenv("LMD_CONFIG", str(cfg))
    return cfg


def test_restore_writes_output_and_comparison(tmp_path, config, image_factory):
    reference = image_factory(240, 320, seed=8)
    frame = cv2.resize(
        np.roll(reference, (3, -4), (0, 1)), (160, 120), interpolation=cv2.INTER_AREA
    )
    ref_path = _write(tmp_path / "ref.png", reference)
    frame_path = _write(tmp_path / "frame.png", frame)
    out = tmp_path / "out" / "restored.png"
    compare = tmp_path / "compare.jpg"
    code = main(
        [
            "restore",
            "--reference",
            str(ref_path),
            "--frame",
            str(frame_path),
            "-o",
            str(out),
            "--compare",
            str(compare),
            "-p",
            "tile=128",
            "-p",
            "overlap=32",
        ]
    )
    assert code == 0
    with Image.open(out) as img:
        assert img.size == (320, 240)
        restored = np.asarray(img.convert("RGB"), np.float32) / 255
    with Image.open(compare) as img:
        assert img.size[0] > 1.2 * img.size[1]  # three panels side by side, two rows
    up = cv2.resize(frame, (320, 240), interpolation=cv2.INTER_CUBIC)
    shifted = np.roll(reference, (3, -4), (0, 1))
    inner = (slice(16, -16), slice(16, -16))
    assert np.abs(restored - shifted)[inner].mean() < np.abs(up - shifted)[inner].mean()
    assert not list(out.parent.glob(".*tmp*"))  # nothing left behind by the atomic write

    # With the video frame at the original key time as --reference-lq.
    lq_path = _write(tmp_path / "frame0.png", cv2.resize(reference, (160, 120)))
    out2 = tmp_path / "restored2.jpg"
    args = ["restore", "--reference", str(ref_path), "--frame", str(frame_path), "-o", str(out2)]
    assert main([*args, "--reference-lq", str(lq_path), "-p", "seed=3"]) == 0
    with Image.open(out2) as img:
        assert img.size == (320, 240) and img.format == "JPEG"


def test_restore_reports_operational_errors(tmp_path, config, image_factory, capsys):
    ref_path = _write(tmp_path / "ref.png", image_factory(64, 64))
    missing = tmp_path / "nope.png"
    args = ["restore", "--reference", str(ref_path), "--frame", str(missing), "-o"]
    assert main([*args, str(tmp_path / "o.png")]) == 1
    assert "not found" in capsys.readouterr().err
    # refuses to overwrite an input
    frame_path = _write(tmp_path / "frame.png", image_factory(32, 32))
    args = ["restore", "--reference", str(ref_path), "--frame", str(frame_path), "-o"]
    assert main([*args, str(frame_path)]) == 1
    assert main([*args, str(tmp_path / "o.png"), "--restorer", "nonexistent"]) == 1
    assert main([*args, str(tmp_path / "o.png"), "-p", "bogus=1"]) == 1
    assert "unknown parameters" in capsys.readouterr().err


def test_restore_reports_a_mistyped_parameter(tmp_path, config, image_factory, capsys):
    ref_path = _write(tmp_path / "ref.png", image_factory(64, 64))
    frame_path = _write(tmp_path / "frame.png", image_factory(32, 32))
    args = ["restore", "--reference", str(ref_path), "--frame", str(frame_path), "-o"]
    assert main([*args, str(tmp_path / "o.png"), "-p", "tile=abc"]) == 1
    assert "parameter tile must be an integer" in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()


def test_restore_builds_the_restorer_as_the_worker_does(tmp_path, config):
    """`lmd restore --restorer livemoments` takes every configured option the worker uses
    (`compile` was dropped), whichever restorer the configuration names."""
    import click

    from daemon.cli.context import CliState
    from daemon.cli.restore import _restorer_options

    config.write_text(
        config.read_text()
        + f'[restorer]\nname = "guided"\ncheckpoint = "{tmp_path / "ck"}"\ncompile = true\n'
    )
    ctx = click.Context(click.Command("restore"), obj=CliState(config_path=config))
    options = _restorer_options(ctx, "livemoments")
    assert options["compile"] is True and Path(options["checkpoint"]) == tmp_path / "ck"
    assert _restorer_options(ctx, "guided") == {}


def test_restore_refuses_a_comparison_over_its_own_output(tmp_path, config, image_factory, capsys):
    """The strip would replace the restored image written a moment before."""
    ref_path = _write(tmp_path / "ref.png", image_factory(64, 64))
    frame_path = _write(tmp_path / "frame.png", image_factory(32, 32))
    out = tmp_path / "o.png"
    args = ["restore", "--reference", str(ref_path), "--frame", str(frame_path), "-o", str(out)]
    assert main([*args, "--compare", str(tmp_path / "." / "o.png")]) == 1
    assert "same file" in capsys.readouterr().err and not out.exists()
