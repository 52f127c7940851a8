"""A copy is not a move: the one rule the scan uses for every job kind.

The same Live Photo in two folders (an album exported twice, a backup folder inside the
library) has the same content and so the same job identity. The store treats the same identity
under a new key as a move and points the job at the new place; with both copies in the library
the job would follow whichever copy the scan met last, a "move" on every scan, and its history
would grow by a 'moved' event per copy per scan. A move leaves nothing behind; a copy leaves the
first one in place, so the job stays with it. The still's job (`daemon.scanner`) and the
video's (`daemon.video_scan`) both ask `copy_of` before they enqueue.
"""

from __future__ import annotations

from pathlib import Path

from core import hashing
from daemon.store import JobSpec, JobStore


def copy_of(store: JobStore, spec: JobSpec) -> int | None:
    """The job this asset is a copy of: a job with the same identity (the same content) under
    another key whose key photo is still where that job recorded it, with that content. The key
    photo decides because lmd never writes it; only assets whose identity already has a job
    under another key pay for the check."""
    job_id = store.job_with_identity(spec.identity)
    job = store.get_job(job_id) if job_id is not None else None
    if job is None or job.asset_key == spec.asset_key:
        return None
    path = job.payload.get("reference")
    recorded = ((job.payload.get("signatures") or {}).get("reference") or {}).get("content_hash")
    if not path or not recorded or path == spec.payload.get("reference"):
        return None
    return job.id if still_there(Path(path), recorded) else None


def still_there(path: Path, digest: str) -> bool:
    """Whether a file with content `digest` is still at `path` (then the one found elsewhere is
    a copy of it, not the same file moved)."""
    try:
        return path.is_file() and hashing.matches(path, digest)
    except (OSError, hashing.UnknownDigest):
        return False
