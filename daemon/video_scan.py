"""The scan's part of video jobs: which Live Photos get one, and the job each gets.

With `[video] enabled` (off by default: a clip costs many times a still) every scan also
enqueues a `video` job per asset chosen by `[video] which`: "reselected", the assets whose key
frame was reselected (those that have a still job), or "all", every Live Photo and Motion Photo
with a video. Like a still job, everything the worker reads is pinned on the row (the clip
restorer, its parameters, the output) and digested into the identity, with the kind in it, so
the still and the video job of one asset never collide and never supersede each other.

The video's output follows `[output]` with two exceptions: a sidecar always goes to the output
tree (a MOV beside the original would be a second Live Photo half in the library), and a Motion
Photo's video, which lives inside its photo, is never replaced: it gets a sidecar MP4 in the
tree. Video jobs have a lower priority than stills, so a still is restored before its MOV is
replaced under it.

In replace mode the library's MOV becomes lmd's output. Rescans must still see the asset as
it was: a video that is lmd's output (its content in the output index) stands for the original
its job restored, so neither the still's nor the video's identity changes. So does a MOV
that differs from what an unfinished replace-mode video job of the asset recorded: that job
may be replacing it now, or was killed between its rename and recording its success (its
backup record names the movie, the index does not yet); the job settles it (the worker
restores from the backed-up original, or skips the job when the MOV is not its output, and
the next scan sees the MOV as it is). The same Live Photo in two folders is a copy, not a
move (`daemon.copies`): the video job stays with the copy it was made for, as the still's does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from core.video import clip_weights_digest
from daemon.copies import copy_of
from daemon.files.signature import FileSignature
from daemon.library.asset import LiveAsset
from daemon.settings import Settings
from daemon.store import JobSpec, JobStore, OutputSpec, job_identity
from daemon.store.jobs import VIDEO
from daemon.store.states import ACTIVE_STATES

#: video jobs run after the stills waiting with them (a still reads the MOV's original frames)
VIDEO_PRIORITY = -1
#: the inputs a video job reads (the restored still is not a keyframe of the daemon's jobs; a
#: Motion Photo's video is inside its reference, whose signature covers it)
VIDEO_ROLES = ("reference", "video")


def wants_video(asset: LiveAsset, settings: Settings) -> bool:
    """Whether `asset` gets a video job under `[video]`."""
    video = settings.video
    if not video.enabled or asset.video is None:
        return False
    if "reference" not in asset.signatures:
        return False
    if "video" not in asset.signatures and not embedded(asset):  # a Motion Photo's is its own
        return False
    return asset.restorable if video.which == "reselected" else True


def embedded(asset: LiveAsset) -> bool:
    """A Motion Photo: the video lives inside the photo (it is never replaced)."""
    return asset.video_offset is not None


def video_output(settings: Settings, asset: LiveAsset) -> OutputSpec:
    """The output pinned on the asset's video job: replace for a MOV of its own in replace
    mode, else a sidecar in the output tree."""
    out = settings.output
    mode = "replace" if out.mode == "replace" and not embedded(asset) else "sidecar"
    library = settings.library if settings.library is not None else asset.reference.parent
    return OutputSpec(
        mode=mode,
        location="tree",
        root=Path(library),
        tree=None if out.tree is None else Path(out.tree),
        suffix=out.suffix,
        backup_dir=None if out.backup_dir is None else Path(out.backup_dir),
        jpeg_quality=out.jpeg_quality,
        heic_quality=out.heic_quality,
    )


def video_weights(settings: Settings) -> str:
    """The digest of the weights the configured clip restorer loads ("none" for
    `guided-video`; `livemoments-video`'s checkpoint, from its `checkpoint` parameter): taken
    once per scan, pinned on every video job and checked by the worker."""
    return clip_weights_digest(settings.video.restorer, settings.video.params)


def video_job_spec(asset: LiveAsset, settings: Settings, weights: str) -> JobSpec:
    """The video job of `asset`: its key photo and video by content, the key time, the clip
    restorer, its weights and parameters, the output and the kind make its identity."""
    params = dict(settings.video.params)
    output = video_output(settings, asset)
    signatures = {
        role: asset.signatures[role].to_dict() for role in VIDEO_ROLES if role in asset.signatures
    }
    identity = job_identity(
        signatures, asset.t0, settings.video.restorer, weights, params, output.to_dict(),
        kind=VIDEO,
    )
    return JobSpec(
        identity=identity,
        asset_key=asset.key,
        payload=asset.to_dict(),
        restorer=settings.video.restorer,
        weights_digest=weights,
        params=params,
        output=output,
        priority=VIDEO_PRIORITY,
        max_attempts=settings.worker.max_attempts,
        kind=VIDEO,
    )


def with_original_video(store: JobStore, asset: LiveAsset) -> LiveAsset:
    """`asset`, its video's signature that of the original when the library's video is lmd's
    output (a replaced MOV): the one its video job restored, kept in the backups."""
    seen = asset.signatures.get("video")
    if seen is None or embedded(asset):
        return asset
    own = store.find_outputs([seen.content_hash]).get(seen.content_hash)
    if own is None:
        recorded = _replacing(store, asset, seen)
    else:
        job = store.get_job(own.job_id)
        if job is None or job.kind != VIDEO:
            return asset
        recorded = (job.payload.get("signatures") or {}).get("video")
    if recorded is None:
        return asset
    signatures = {**asset.signatures, "video": FileSignature.from_dict(recorded)}
    return dataclasses.replace(asset, signatures=signatures)


def _replacing(store: JobStore, asset: LiveAsset, seen: FileSignature) -> dict | None:
    """The original video signature of an unfinished replace-mode video job of `asset` whose
    recorded video is not what the library holds (`seen`), else None."""
    for job in reversed(store.jobs_for_asset(asset.key)):
        if job.kind != VIDEO or job.state not in ACTIVE_STATES:
            continue
        if job.output is None or job.output.mode != "replace":
            continue
        recorded = (job.payload.get("signatures") or {}).get("video")
        if recorded is not None and recorded.get("content_hash") != seen.content_hash:
            return recorded
    return None


def enqueue_video(
    store: JobStore, asset: LiveAsset, settings: Settings, weights: Callable[[], str]
) -> bool:
    """Enqueue `asset`'s video job when `[video]` asks for one and its key photo is not lmd's
    output; True when a new job was made. `weights` gives `video_weights` (asked only when a
    job is made: a scan with videos off never digests a checkpoint)."""
    if not wants_video(asset, settings):
        return False
    reference = asset.signatures["reference"].content_hash
    if store.find_outputs([reference]):
        return False
    spec = video_job_spec(asset, settings, weights())
    if copy_of(store, spec) is not None:  # the same video job stays with the first copy
        return False
    return store.enqueue(spec).created
