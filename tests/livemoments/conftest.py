"""Shared fixtures: one tiny random checkpoint per session (written in the published layout)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from core.livemoments.write import write_random_checkpoint

    return write_random_checkpoint(tmp_path_factory.mktemp("lm") / "tiny", size="tiny", seed=3)


@pytest.fixture
def checkpoint_copy(tiny_checkpoint: Path, tmp_path: Path) -> Path:
    """A private copy a test may damage."""
    import shutil

    dst = tmp_path / "ck"
    shutil.copytree(tiny_checkpoint, dst)
    return dst


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """The tiny networks are latency-bound: with two threads on a shared, loaded machine, OpenMP
    spinning made them 30× slower, so these tests run torch single-threaded (restored after)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
