"""Review fixtures: one small Live Photo library per session (copied per test)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def source_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from daemon.demo import build_sample_library

    library = tmp_path_factory.mktemp("review-source") / "library"
    build_sample_library(library, count=3, video_size=(96, 72), scale=2)
    return library
