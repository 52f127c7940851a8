"""Where review keeps its files: staging and previews, inside the state directory.

Why inside the state directory: a restoration waiting for a decision must not show up in the
library or the output tree (Immich, PhotoPrism and the scanner would pick it up), and the
state directory is lmd's own, on local disk. Every name below is made from the job's integer
id and a fixed set of preview kinds, never from anything a request carries, so the page can
only ever serve these files.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
from pathlib import Path

#: The preview pictures made when a job finishes, by kind (what the page may ask for).
PREVIEW_FILES: dict[str, str] = {
    "before": "before.jpg",  # the reselected frame, at the restored still's size (≤ 2048 px)
    "after": "after.jpg",  # the restoration (≤ 2048 px)
    "reference": "reference.jpg",  # the original key photo (≤ 2048 px)
    "strip": "strip.jpg",  # frame | restored | reference, and a full-resolution crop of each
    "thumb-before": "thumb-before.jpg",  # the grid's small pictures
    "thumb-after": "thumb-after.jpg",
}
#: The reselected frame at its own resolution: the loupe's "before" at 1:1 of the still.
FRAME_FILE = "frame.png"


class ReviewDirs:
    """Paths below `<state_dir>/review/`: `staging/<job>/<name>.png`, `previews/<job>/...`."""

    def __init__(self, state_dir: Path) -> None:
        self.root = Path(state_dir) / "review"
        self.staging = self.root / "staging"
        self.previews = self.root / "previews"

    @staticmethod
    def _job(job_id: int) -> str:
        if not isinstance(job_id, int) or isinstance(job_id, bool) or job_id < 1:
            raise ValueError(f"not a job id: {job_id!r}")
        return str(job_id)

    def staging_dir(self, job_id: int) -> Path:
        return self.staging / self._job(job_id)

    def new_staged_file(self, job_id: int) -> Path:
        """A fresh name for one attempt's staged still: two workers that both ran the job
        (one of them after losing its lease) never write the same file."""
        return self.staging_dir(job_id) / f"{secrets.token_hex(6)}.png"

    def staged_file(self, job_id: int, name: str) -> Path:
        """The staged still `name` (as recorded on the review row) of `job_id`."""
        if not name or "/" in name or name.startswith(".") or not name.endswith(".png"):
            raise ValueError(f"not a staged file name: {name!r}")
        return self.staging_dir(job_id) / name

    def discard_staged(self, job_id: int, keep: str | None = None) -> None:
        """Remove the job's staged stills (all but `keep`)."""
        folder = self.staging_dir(job_id)
        if not folder.is_dir():
            return
        for path in folder.iterdir():
            if path.name != keep:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        if keep is None:
            with contextlib.suppress(OSError):
                folder.rmdir()

    def preview_dir(self, job_id: int) -> Path:
        return self.previews / self._job(job_id)

    def preview(self, job_id: int, kind: str) -> Path:
        """The preview of `kind` (a key of `PREVIEW_FILES`; KeyError otherwise)."""
        return self.preview_dir(job_id) / PREVIEW_FILES[kind]

    def frame(self, job_id: int) -> Path:
        return self.preview_dir(job_id) / FRAME_FILE

    def discard_previews(self, job_id: int) -> None:
        shutil.rmtree(self.preview_dir(job_id), ignore_errors=True)
