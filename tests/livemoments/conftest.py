"""Shared fixtures: one tiny random checkpoint per session (written in the published layout)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from core.livemoments.checkpoint import write_random_checkpoint

    return write_random_checkpoint(tmp_path_factory.mktemp("lm") / "tiny", size="tiny", seed=3)


@pytest.fixture
def checkpoint_copy(tiny_checkpoint: Path, tmp_path: Path) -> Path:
    """A private copy a test may damage."""
    import shutil

    dst = tmp_path / "ck"
    shutil.copytree(tiny_checkpoint, dst)
    return dst
