"""Shared fixtures for discovery tests: small moving frames and the real-file folder."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "real"
FPS = 30.0


def texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth random RGB texture (blocky noise upsampled): distinct, compressible content."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, h // 8), max(2, w // 8), 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC))


def moving_frames(n: int = 12, h: int = 48, w: int = 64, step: int = 4, seed: int = 0):
    """`n` frames of a texture panning `step` pixels per frame."""
    tex = texture(h, w + step * n, seed)
    return [tex[:, i * step : i * step + w].copy() for i in range(n)]


@pytest.fixture
def frames() -> list[np.ndarray]:
    return moving_frames()


def exiftool_json(*paths: Path, args: tuple[str, ...] = ("-a",)) -> list[dict]:
    exe = shutil.which("exiftool")
    if exe is None:
        pytest.skip("exiftool not installed")
    out = subprocess.run(
        [exe, "-j", "-G1", *args, *map(str, paths)], capture_output=True, check=False
    )
    return json.loads(out.stdout.decode())


def real(name: str) -> Path:
    path = REAL / name
    if not path.exists():
        pytest.skip(f"real fixture {name} not present")
    return path
