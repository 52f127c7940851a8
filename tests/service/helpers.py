"""Helpers for the service tests: tiny library sizes, settings and tree hashes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from core import Diagnostics, RestoreRequest, RestoreResult
from daemon.settings import Settings, load_settings

#: Small enough that `guided` restores a photo in well under a second on one core.
TINY_VIDEO = (96, 72)
TINY_SCALE = 2


def tree_hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def make_settings(tmp_path: Path, **overrides) -> Settings:
    base = {
        "library": tmp_path / "library",
        "state_dir": tmp_path / "state",
        "watcher": {"mode": "off"},
    }
    base.update(overrides)
    return load_settings(None, **base)


class CountingRestorer:
    """A real restorer object (bicubic upscale of the target to the reference's size) that
    counts its calls, so a test can tell whether a restoration ran at all."""

    name = "counting"

    def __init__(self) -> None:
        self.calls = 0

    def restore(self, request: RestoreRequest) -> RestoreResult:
        import cv2

        self.calls += 1
        h, w = request.reference.shape[:2]
        up = cv2.resize(request.target, (w, h), interpolation=cv2.INTER_CUBIC)
        return RestoreResult(np.clip(up, 0, 1), Diagnostics(tiles=1))
