"""Fixtures for the service tests: a small synthetic library."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.service.helpers import TINY_SCALE, TINY_VIDEO


@pytest.fixture
def tiny_library(tmp_path: Path) -> Path:
    from daemon.demo import build_sample_library

    library = tmp_path / "library"
    build_sample_library(library, count=2, video_size=TINY_VIDEO, scale=TINY_SCALE)
    return library
