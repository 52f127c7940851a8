"""Helpers for the review tests: quick restorers whose results and flow confidence the test
chooses, a library built once per session and copied per test, and a scan + work in one call."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from core import Diagnostics, RestoreRequest, RestoreResult
from daemon.scanner import run_scan
from daemon.settings import Settings, load_settings
from daemon.store import JobStore, open_store
from daemon.worker import Worker


class Upscale:
    """An honest, instant restorer: the target upscaled to the reference's size (bicubic),
    reporting the flow confidence the test asks for."""

    name = "upscale"

    def __init__(self, flow_confidence: float = 0.9) -> None:
        self.flow_confidence = flow_confidence
        self.calls = 0

    def upscale(self, request: RestoreRequest) -> np.ndarray:
        h, w = request.reference.shape[:2]
        target = request.target
        if target.dtype == np.uint8:
            target = target.astype(np.float32) / 255.0
        return np.clip(cv2.resize(target, (w, h), interpolation=cv2.INTER_CUBIC), 0, 1)

    def restore(self, request: RestoreRequest) -> RestoreResult:
        self.calls += 1
        image = self.upscale(request)
        return RestoreResult(image, Diagnostics(tiles=1, flow_confidence=self.flow_confidence))


def copy_library(source: Path, tmp_path: Path) -> Path:
    library = tmp_path / "library"
    shutil.copytree(source, library)
    return library


def cli_library(
    tmp_path: Path, source_library: Path, monkeypatch: Any, sections: str
) -> Path:
    """A copy of the library for tests that run `lmd` in-process: its `lmd.toml` (the library,
    a state directory in `tmp_path`, no watcher, then `sections`) named by LMD_CONFIG, no other
    LMD_ variable that would override it, warnings only in the log. Returns the library."""
    from daemon.logging import configure_logging

    library = copy_library(source_library, tmp_path)
    config = tmp_path / "lmd.toml"
    config.write_text(f'library = "{library}"\nstate_dir = "{tmp_path / "state"}"\n'
                      f'[watcher]\nmode = "off"\n{sections}')
    for name in ("LMD_REVIEW__TOKEN", "LMD_STATE_DIR", "LMD_DATABASE_URL", "LMD_LIBRARY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LMD_CONFIG", str(config))
    configure_logging("warning")
    return library


def settings_for(tmp_path: Path, library: Path, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "library": library,
        "state_dir": tmp_path / "state",
        "watcher": {"mode": "off"},
    }
    base.update(overrides)
    return load_settings(None, **base)


def scan_and_work(settings: Settings, restorer: Any = None) -> JobStore:
    """Scan the library and run every job with `restorer` (default `Upscale()`); the store
    is returned open (the caller closes it)."""
    store = open_store(settings.database_url)
    run_scan(settings, Path(settings.library), store=store)
    Worker(settings, store, worker_id="t", restorer=restorer or Upscale()).run_until_empty()
    return store


def tree_files(root: Path) -> set[str]:
    """Every file below `root` (relative names); empty when `root` does not exist."""
    if not root.exists():
        return set()
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
