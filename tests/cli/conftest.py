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


@pytest.fixture
def here(configured: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """In-process commands (`daemon.cli.main`) run as `lmd` would in `tmp_path`: its
    `./lmd.toml` applies, no LMD_ variable of the caller does."""
    import os

    for name in [n for n in os.environ if n.upper().startswith("LMD_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(configured.parent)
    return configured


def scan_in_process(config: Path) -> int:
    """Scan the sample library (the scan's own command line is tested in test_cli_scan.py);
    returns how many jobs were enqueued."""
    from daemon.logging import configure_logging
    from daemon.scanner import run_scan
    from daemon.settings import load_settings

    configure_logging("warning")  # to stderr, as `lmd` does: stdout is for the command's output
    settings = load_settings(config)
    return run_scan(settings, settings.library).enqueued
