"""A library's life, step by step (issue 10 finding 6): what a person does to a library that lmd
watches, and what lmd does, with the invariants checked after every step.

`Life` keeps the library, the settings the person changes (restorer parameters, output mode),
the job store and what the person did (`People`). The lifecycle test drives it with a fixed
script and workers in its own process; the soak (`bench/soak.py`) with random steps and worker
processes it kills and stops. How work is done is the caller's (`work`).
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from daemon.library.media import load_still
from daemon.library.synth import write_apple_still
from daemon.output import (
    apple_content_identifier,
    read_metadata,
    read_provenance,
    write_image,
)
from daemon.scanner import run_scan
from daemon.settings import Settings
from daemon.store import JobStore
from tests.integrity.helpers import build_library, lmd_revert
from tests.integrity.invariants import People, check, digest
from tests.service.helpers import make_settings

#: how much a person's edit brightens a still (8-bit levels): a visible, new content
EDIT_LEVELS = 12


class Life:
    """One library's life under lmd. `violations` collects (step, problem) for every
    invariant broken after a step; `steps` counts the steps taken."""

    def __init__(
        self, base: Path, store: JobStore | None = None, *, seed: int = 1,
        worker: dict[str, Any] | None = None, database_url: str | None = None,
    ) -> None:
        self.base = base
        self.library = base / "library"
        self.library.mkdir(parents=True, exist_ok=True)
        self.rng = random.Random(seed)
        self.people = People(self.library)
        self.overrides: dict[str, Any] = {
            "library": self.library,
            "output": {"mode": "replace"},
            "restorer": {"name": "guided", "params": {}},
            "worker": worker or {"lease_seconds": 7200, "heartbeat_seconds": 3600,
                                 "max_attempts": 1000},
        }
        if database_url is not None:
            self.overrides["database_url"] = database_url
        self.settings = self._settings()
        self.store = store
        self.batches = 0
        self.next_number = 1201
        self.violations: list[tuple[str, str]] = []
        self.steps = 0
        self.log: list[str] = []

    # ---------------------------------------------------------------------- bookkeeping
    def _settings(self) -> Settings:
        return make_settings(self.base, **self.overrides)

    def verify(self, step: str, *, drained: bool = False) -> list[str]:
        """Check every invariant now (no worker may be running)."""
        assert self.store is not None
        self.steps += 1
        self.log.append(step)
        problems = check(
            self.store, self.settings.output.backup_dir, self.people, drained=drained,
            state_dir=self.settings.state_dir,
        )
        self.violations += [(step, p) for p in problems]
        return problems

    def stills(self, *, replaced: bool | None = None) -> list[Path]:
        """Targets (IMG_E*) in the library; `replaced`: only those holding lmd's output now
        (True) or the person's own file (False)."""
        found = sorted(p for p in self.library.rglob("IMG_E*.HEIC") if p.is_file())
        if replaced is None:
            return found
        return [p for p in found if (self.people.files.get(str(p)) != digest(p)) is replaced]

    def folders(self) -> list[Path]:
        return sorted(p for p in self.library.iterdir() if p.is_dir())

    # ------------------------------------------------------------------- what lmd does
    def scan(self) -> Any:
        assert self.store is not None
        return run_scan(self.settings, self.library, store=self.store)

    def work(self, run: Callable[[Life], None]) -> None:
        run(self)

    # --------------------------------------------------------------- what a person does
    def add_photos(self, count: int) -> Path:
        """A new folder of `count` reselected Live Photos (numbers never reused)."""
        self.batches += 1
        folder = self.library / f"batch-{self.batches}"
        build_library(folder, count, first_number=self.next_number, seed=self.batches)
        self.next_number += count
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                self.people.files[str(path)] = digest(path)
        return folder

    def rename_folder(self, folder: Path | None = None) -> tuple[Path, Path]:
        folder = folder or self.rng.choice(self.folders())
        new = folder.with_name(f"{folder.name}-renamed-{self.steps}")
        folder.rename(new)
        self.people.move(folder, new)
        return folder, new

    def touch(self, path: Path | None = None) -> Path:
        """A sync tool's touch: a new mtime, the same content."""
        path = path or self.rng.choice(sorted(self.library.rglob("*.MOV")))
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        return path

    def edit_target(self, path: Path | None = None) -> Path | None:
        """The person exports a new version of a target still (no lmd provenance in it): new
        input, whether the file there was theirs or lmd's output."""
        candidates = self.stills()
        if path is None and not candidates:
            return None
        path = path or self.rng.choice(candidates)
        pixels = load_still(path, dtype=np.uint8).astype(np.int16)
        brighter = np.clip(pixels + EDIT_LEVELS, 0, 255).astype(np.uint8)
        write_apple_still(path, brighter, _content_id(path), "heic")
        self.people.put(path)
        return path

    def edit_output(self, path: Path | None = None) -> Path | None:
        """The person edits lmd's output in an editor that keeps its XMP (lmd's provenance)."""
        candidates = [p for p in self.stills(replaced=True)
                      if digest(p) not in self.people.derived]
        if path is None and not candidates:
            return None
        path = path or self.rng.choice(candidates)
        provenance = read_provenance(read_metadata(path).xmp)
        pixels = load_still(path, dtype=np.uint8).astype(np.int16)
        darker = np.clip(pixels - EDIT_LEVELS, 0, 255).astype(np.uint8)
        write_image(path, darker, like=path, xmp_provenance=provenance)
        self.people.edit_output(path)
        return path

    def delete(self, stem_path: Path | None = None) -> list[Path]:
        """The person deletes a whole Live Photo (its still, video, render and AAE)."""
        references = sorted(p for p in self.library.rglob("IMG_[0-9]*.HEIC"))
        if stem_path is None and not references:
            return []
        reference = stem_path or self.rng.choice(references)
        number = reference.stem.split("_")[1]
        gone = [p for p in reference.parent.iterdir()
                if p.is_file() and p.stem in (f"IMG_{number}", f"IMG_E{number}")]
        for path in gone:
            path.unlink()
            self.people.delete(path)
        return gone

    def change_restorer(self) -> None:
        """Another restorer setting: every asset's identity changes (new work)."""
        params = dict(self.overrides["restorer"]["params"])
        params["seed"] = int(params.get("seed", 0)) + 1
        self.overrides["restorer"] = {**self.overrides["restorer"], "params": params}
        self.settings = self._settings()

    def change_mode(self) -> str:
        mode = "sidecar" if self.overrides["output"]["mode"] == "replace" else "replace"
        self.overrides["output"] = {**self.overrides["output"], "mode": mode}
        self.settings = self._settings()
        return mode

    def reprocess(self, force: bool) -> int:
        assert self.store is not None
        return self.store.reprocess(datetime.now(UTC) - timedelta(days=1), force=force)

    def revert(self, path: Path | None = None) -> Any:
        """`lmd revert` of one replaced still (by where it is now), or `--all` (path None)."""
        if path is None:
            return lmd_revert(self.settings, "--all")
        return lmd_revert(self.settings, str(path.relative_to(self.library)))

    def revert_all_forced(self) -> Any:
        """`lmd revert --all --force`: every original back, edits of outputs included."""
        return lmd_revert(self.settings, "--all", "--force")


def _content_id(path: Path) -> str:
    """The ContentIdentifier a still carries (it pairs with its MOV), for a new version."""
    exif = read_metadata(path).exif or b""
    if exif.startswith(b"Exif\x00\x00"):
        exif = exif[6:]
    return apple_content_identifier(exif) or "LMD-SOAK"
