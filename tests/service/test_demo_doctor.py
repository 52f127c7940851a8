"""`lmd demo` (the README's first command) and `lmd doctor`, end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from daemon.demo import run_demo
from daemon.library.media import load_still
from daemon.library.quicktime import read_mov_info
from tests.service.helpers import TINY_SCALE, TINY_VIDEO

REPO = Path(__file__).resolve().parents[2]


def test_demo_restores_every_sample_and_writes_comparisons(tmp_path: Path) -> None:
    result = run_demo(tmp_path / "demo", count=2, video_size=TINY_VIDEO, scale=TINY_SCALE)
    assert result.status["jobs"]["succeeded"] == 2
    assert sum(result.status["jobs"].values()) == 2
    assert len(result.outputs) == 2 and len(result.comparisons) == 2
    for output in result.outputs:
        assert output.is_relative_to(result.state_dir / "restored")
        restored = load_still(output)
        assert restored.shape == (TINY_VIDEO[1] * TINY_SCALE, TINY_VIDEO[0] * TINY_SCALE, 3)
    for comparison in result.comparisons:
        panel = load_still(comparison)
        assert panel.shape[1] > 1.2 * panel.shape[0]  # three panels side by side, two rows
    # the sample library is what discovery expects: a MOV whose key time is T0, not T1
    movs = sorted(result.library.rglob("*.MOV"))
    assert len(movs) == 2
    info = read_mov_info(movs[0])
    assert info.still_image_time is not None and abs(info.still_image_time - 0.3) < 0.01


def test_demo_output_is_closer_to_the_truth_than_the_frame(tmp_path: Path) -> None:
    """The restored still must be sharper than the low-quality target, i.e. the demo shows
    an actual restoration, not a copy."""
    import cv2

    result = run_demo(tmp_path / "demo", count=1, video_size=(160, 120), scale=3)
    restored = load_still(result.outputs[0])
    edited = load_still(next(result.library.rglob("IMG_E*.HEIC")))

    def sharpness(img: np.ndarray) -> float:
        gray = cv2.cvtColor((img * 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)
        return float(cv2.Laplacian(gray, cv2.CV_64F).var())

    assert sharpness(restored) > 1.5 * sharpness(edited)


def lmd(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "daemon.cli", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def test_doctor_reports_each_check_with_a_fix(tmp_path: Path) -> None:
    library = tmp_path / "library"
    library.mkdir()
    config = tmp_path / "lmd.toml"
    config.write_text(f'library = "{library}"\nstate_dir = "{tmp_path / "state"}"\n')
    out = lmd("--config", str(config), "doctor", "--json")
    findings = {f["check"]: f for f in json.loads(out.stdout)}
    assert set(findings) >= {"config", "database", "library", "watcher", "inotify", "gpu",
                             "checkpoint", "exiftool", "state_dir"}
    assert findings["config"] == {"check": "config", "status": "ok", "fix": "",
                                  "detail": f"{config}: every value valid"}
    assert findings["library"]["status"] == "ok"
    assert findings["watcher"]["detail"].startswith("inotify")
    # the database does not exist yet: doctor says so and says what to do, exit 0 (warn)
    assert findings["database"]["status"] in {"ok", "warn"}
    assert out.returncode == 0, out.stdout + out.stderr

    config.write_text(f'library = "{tmp_path / "missing"}"\nstate_dir = "{tmp_path / "s"}"\n')
    out = lmd("--config", str(config), "doctor", "--json")
    findings = {f["check"]: f for f in json.loads(out.stdout)}
    assert findings["library"]["status"] == "fail"
    assert "not a directory" in findings["library"]["detail"]
    assert findings["library"]["fix"]
    assert out.returncode == 1


def test_cli_scan_work_status_round_trip(tmp_path: Path, tiny_library: Path) -> None:
    config = tmp_path / "lmd.toml"
    config.write_text(f'library = "{tiny_library}"\nstate_dir = "{tmp_path / "state"}"\n')
    scan = lmd("--config", str(config), "scan", "--json")
    assert scan.returncode == 0, scan.stderr
    assert json.loads(scan.stdout)["summary"]["enqueued"] == 2
    status = json.loads(lmd("--config", str(config), "status", "--json").stdout)
    assert status["jobs"]["pending"] == 2
    assert status["last_scan"]["enqueued"] == 2
    work = lmd("--config", str(config), "work")
    assert work.returncode == 0 and "ran 2 job(s)" in work.stdout
    status = json.loads(lmd("--config", str(config), "status", "--json").stdout)
    assert status["jobs"]["succeeded"] == 2 and status["failures"] == []


def test_doctor_checks_the_configured_tile_against_the_checkpoint(tmp_path: Path, monkeypatch):
    """The tiny model's transformer takes tiles up to 512 px (pos_embed_max_size 32 × patch 2 ×
    VAE 8): the default tile (1024) is reported with the largest that fits, 512 passes. The
    report is the real CheckpointReport with the tiny configs (writing the weights takes seconds
    and is covered by tests/livemoments)."""
    from core.livemoments import validate
    from core.livemoments.config import TINY_TRANSFORMER, TINY_VAE
    from daemon.doctor import check_checkpoint
    from daemon.settings import load_settings

    def report(directory):
        return validate.CheckpointReport(path=Path(directory), transformer_config=TINY_TRANSFORMER,
                                         vae_config=TINY_VAE, random_weights=True)

    monkeypatch.setattr(validate, "validate_checkpoint", report)
    checkpoint = tmp_path / "model"
    base = {"state_dir": tmp_path / "state",
            "restorer": {"name": "livemoments", "checkpoint": checkpoint}}
    finding = check_checkpoint(load_settings(None, **base))
    assert finding.status == "fail"
    assert "tile 1024 is larger than this checkpoint takes" in finding.detail
    assert "the largest tile it can take is 512" in finding.detail
    assert "tile = 512" in finding.fix

    fits = {**base, "restorer": {**base["restorer"], "params": {"tile": 512}}}
    finding = check_checkpoint(load_settings(None, **fits))
    assert finding.status == "ok", finding
    assert finding.detail == f"{checkpoint}: usable, tiles up to 512 px (random weights)"
