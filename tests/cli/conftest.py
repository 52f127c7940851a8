"""Fixtures for the command-line tests: a tiny sample library with its config file."""

from __future__ import annotations

from pathlib import Path

import pytest

#: Small enough that `guided` restores a photo in well under a second on one core
#: (the same sizes as tests/service/helpers.py).
TINY_VIDEO = (96, 72)
TINY_SCALE = 2


@pytest.fixture
def configured(tmp_path: Path) -> Path:
    """`tmp_path/lmd.toml` naming a two-photo sample library under `tmp_path/library` and the
    state directory `tmp_path/state`; commands run in `tmp_path` find it as `./lmd.toml`."""
    from daemon.demo import build_sample_library

    library = tmp_path / "library"
    build_sample_library(library, count=2, video_size=TINY_VIDEO, scale=TINY_SCALE)
    config = tmp_path / "lmd.toml"
    config.write_text(
        f'library = "{library}"\nstate_dir = "{tmp_path / "state"}"\n'
        '[restorer]\nname = "guided"\n[watcher]\nmode = "off"\n'
    )
    return config
