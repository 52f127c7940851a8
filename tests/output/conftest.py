"""Fixtures: an Apple-like still built in code (apple_source), a library to replace in."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from daemon.output import commit_replace, plan_output

from .helpers import XMP_ORIGINAL, Out, build_exif, display_p3_like_icc, gradient


@pytest.fixture
def apple_source(tmp_path: Path):
    """Factory: an Apple-like still (HEIC or JPEG) with maker note, XMP and ICC."""

    def make(name: str = "IMG_E1234.HEIC", size: tuple[int, int] = (40, 30)) -> Path:
        path = tmp_path / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        w, h = size
        im = Image.fromarray((gradient(h, w) * 255).astype(np.uint8))
        fmt = "HEIF" if path.suffix.lower() in {".heic", ".heif"} else "JPEG"
        im.save(
            path,
            format=fmt,
            quality=80,
            exif=build_exif(width=w, height=h, orientation=1),
            xmp=XMP_ORIGINAL,
            icc_profile=display_p3_like_icc(),
        )
        return path

    return make


@dataclass
class ReplaceCase:
    """A library with one Apple-like JPEG still to replace, and replace-mode settings."""

    lib: Path
    target: Path
    out: Out

    def plan(self):
        return plan_output(self.target, self.lib, self.out)

    def commit(self, image: np.ndarray | None = None, **kwargs):
        pixels = gradient() if image is None else image
        return commit_replace(self.plan(), pixels, self.target, {"restorer": "t"}, **kwargs)


@pytest.fixture
def replace_case(tmp_path: Path, apple_source) -> ReplaceCase:
    lib = tmp_path / "library"
    (lib / "2024").mkdir(parents=True)
    target = lib / "2024" / "IMG_E0001.JPG"
    os.replace(apple_source("IMG_E0001.JPG"), target)
    return ReplaceCase(lib, target, Out(mode="replace", backup_dir=tmp_path / "state" / "backups"))
