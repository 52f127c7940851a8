"""The apple_source fixture: an Apple-like still built in code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from .helpers import XMP_ORIGINAL, build_exif, display_p3_like_icc, gradient


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
