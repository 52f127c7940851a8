"""The worker's files: checking and decoding a job's inputs, planning its output from the job
row, and writing the restored still as planned.

The plan comes from the output pinned on the job (`Job.output`), never from the settings
current when the worker runs, and it is made and checked before the restoration starts: a job
whose output cannot be planned (no pinned output, a reference original as destination, a bad
suffix...: `BadOutputPlan`) or never written (a read-only library, a name too long, a file or a
symlink in the way: `daemon.output.PermanentOutputError`) is refused before any pixel is
computed. Writes stay below their root (the output tree, or the library) without following a
symlink.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from daemon.files.errors import UnreadableFile
from daemon.files.signature import FileSignature
from daemon.library.asset import LiveAsset
from daemon.library.media import decode_frame_at, load_still
from daemon.library.naming import edited_name
from daemon.output import (
    Fence,
    OutputError,
    OutputPlan,
    check_writable,
    commit_replace,
    plan_output,
    signature_of,
    write_image,
)
from daemon.store import Job
from daemon.worker.interfaces import LoadedInputs


class BadOutputPlan(Exception):
    """The job's output cannot be planned; retrying cannot help (not retryable)."""


def input_signatures_match(asset: LiveAsset) -> bool:
    """Cheap check that the inputs still have the size and mtime the scan saw."""
    paths = {"reference": asset.reference, "video": asset.video, "target": asset.target}
    for role, signature in asset.signatures.items():
        path = paths.get(role)
        if path is None:
            continue
        try:
            st = path.stat()
        except OSError:
            return False
        if st.st_size != signature.size or st.st_mtime_ns != signature.mtime_ns:
            return False
    return True


def load_inputs(asset: LiveAsset) -> LoadedInputs:
    """Decode what the restorer needs; raises `UnreadableFile` with a reason on bad input.

    Stills stay 8-bit: a restorer that streams tiles keeps them so (a 108 MP reference is
    324 MB, not 1.3 GB), and `core.restore` converts them to float32 for the others."""
    reference = load_still(asset.reference, dtype=np.uint8)
    if asset.target is not None:
        target = load_still(asset.target, dtype=np.uint8)
        like = asset.target
    elif asset.video is not None and asset.t1 is not None:
        target = decode_frame_at(
            asset.video, asset.t1, offset=asset.video_offset, length=asset.video_length
        )
        like = asset.reference
    else:
        raise UnreadableFile("asset has neither a target still nor a video frame time")
    reference_lq = None
    if asset.video is not None and asset.t0 is not None:
        reference_lq = decode_frame_at(
            asset.video, asset.t0, offset=asset.video_offset, length=asset.video_length
        )
    return LoadedInputs(target, reference, reference_lq, like)


def output_target(asset: LiveAsset) -> Path:
    """The still the output stands for. Without a target still (the frame comes from the
    video) it is a new file named as Photos names a rendered edit (`IMG_E1234.HEIC` beside the
    reference), so the output reads as the new key photo."""
    if asset.target is not None:
        return asset.target
    return asset.reference.with_name(edited_name(asset.reference.stem) + asset.reference.suffix)


def plan_job_output(job: Job) -> OutputPlan:
    """The destination of `job`'s output, from the output pinned on the job."""
    spec = job.output
    if spec is None:
        raise BadOutputPlan(
            f"job {job.id} was enqueued before lmd pinned the output on each job; "
            "the next scan enqueues its replacement"
        )
    asset = LiveAsset.from_dict(job.payload)
    try:
        return plan_output(output_target(asset), spec.root, spec, references=(asset.reference,))
    except OutputError as exc:
        raise BadOutputPlan(f"bad output setting: {exc}") from exc


def write_root(job: Job, plan: OutputPlan) -> Path:
    """The directory a plan's write stays below: the output tree for tree sidecars, else the
    library (beside and replace outputs live in it)."""
    assert job.output is not None  # planned from it
    if plan.kind == "sidecar-tree" and job.output.tree is not None:
        return Path(job.output.tree)
    return job.output.root


class LibraryFiles:
    """`JobFiles` on the real library and output tree."""

    def inputs_unchanged(self, asset: LiveAsset) -> bool:
        return input_signatures_match(asset)

    def plan(self, job: Job) -> OutputPlan:
        plan = plan_job_output(job)
        root = write_root(job, plan)
        # a root that does not exist yet (a new output tree) has no symlink below it to refuse
        check_writable(plan.destination, root if root.exists() else None)
        return plan

    def load(self, asset: LiveAsset) -> LoadedInputs:
        return load_inputs(asset)

    def write(
        self, plan: OutputPlan, job: Job, image: np.ndarray, like: Path,
        provenance: dict[str, Any], *, fence: Fence | None = None,
    ) -> FileSignature:
        """`fence` (raising `FenceLost`) runs immediately before the final rename: a review
        decision passes its claim check here."""
        assert job.output is not None  # planned from it
        quality = job.output.quality_for(plan.destination)
        if plan.kind == "replace":
            # the backup and its record beside it are written by commit_replace (the one
            # source of truth for `lmd revert`)
            record = commit_replace(plan, image, like, provenance, quality=quality, fence=fence)
            return record.output or signature_of(plan.destination)
        return write_image(
            plan.destination, image, like=like, xmp_provenance=provenance, quality=quality,
            keep_live_identity=plan.keep_live_identity, root=write_root(job, plan), fence=fence,
        )
