"""The reconciliation scan: discovery's findings, turned into jobs.

Discovery (`daemon.library`) says what is on disk; this module decides what that means for the
queue: every restorable reselected asset becomes a `JobSpec` whose identity digests its inputs'
content, T1, the restorer, its weights and its parameters. Enqueueing is idempotent, so the scan
can run at start, on the cron, after watcher events and by hand with the same result. A moved
file keeps its content hash and so its identity: the store updates the job's paths instead of
making a new job; a copy (the same content while the first is still in its place) is left to
the first one's job. Unchanged files are not read at all: the asset cache in the database answers
for them by stat fingerprint. With `[video] enabled`, an asset's video gets a job of its own
beside its still's (`daemon.video_scan`).

lmd's own outputs are never inputs. Before anything is enqueued, the inputs' content digests
are looked up in the store's index of every output lmd wrote: a target that is lmd's output is
a restored still, "restored, moved" when it turned up under a new path (its job, its index row
and, through the worker, its backup record follow it). Its job's input is the original kept in
the backups, so a restorer or output mode changed since makes new work from that original,
never from the output. A still that carries lmd's provenance in its XMP but whose content is not
in the index (lmd's output edited by a person, or written by a worker killed before it could
record it) is not an input either.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import structlog

from core import hashing
from daemon.copies import copy_of, still_there
from daemon.files.errors import UnreadableFile
from daemon.files.signature import FileSignature
from daemon.files.stack_names import PHOTOPRISM_STACK_SUFFIX
from daemon.files.xmp import parse_packet, split
from daemon.library.asset import LiveAsset
from daemon.library.discover import DEFAULT_IGNORE, Unreadable, discover
from daemon.library.stills import read_still_meta
from daemon.restorer_config import configured_weights_digest
from daemon.settings import Settings
from daemon.store import JobSpec, JobState, JobStore, OutputSpec, job_identity, open_store
from daemon.video_scan import enqueue_video, video_weights, with_original_video

log = structlog.get_logger(__name__)


class ScanError(ValueError):
    """A scan that cannot be run as asked (no library, a path outside it)."""


#: Marks a group that is not a Live Photo, so unchanged rescans skip it without reading it.
PLAIN = "plain"
#: Marks the remembered result of a whole unchanged directory (see `DirectoryCache`).
DIRECTORY = "directory"


class StoreAssetCache:
    """`daemon.library.discover.AssetCache` kept in the `assets` table, so rescans after a
    restart are as cheap as rescans within one process."""

    def __init__(self, store: JobStore) -> None:
        self._store = store

    def lookup(self, key: str, fingerprint: str) -> LiveAsset | None:
        data = self._store.lookup_asset(key, fingerprint)
        if data is None or data.get("kind") in {PLAIN, DIRECTORY, "unreadable"}:
            return None
        return LiveAsset.from_dict(data)

    def remember(self, key: str, fingerprint: str, asset: LiveAsset) -> None:
        self._store.remember_asset(
            key, fingerprint, asset.to_dict(), reason=asset.reason, restorable=asset.restorable
        )

    def is_plain(self, key: str, fingerprint: str) -> bool:
        data = self._store.lookup_asset(key, fingerprint)
        return data is not None and data.get("kind") == PLAIN

    def remember_plain(self, key: str, fingerprint: str) -> None:
        self._store.remember_asset(key, fingerprint, {"kind": PLAIN}, reason=None,
                                   restorable=False)

    def lookup_directory(self, key: str, fingerprint: str) -> list[LiveAsset] | None:
        data = self._store.lookup_asset(key, fingerprint)
        if data is None or data.get("kind") != DIRECTORY:
            return None
        return [LiveAsset.from_dict(item) for item in data["items"]]

    def remember_directory(self, key: str, fingerprint: str, assets: list[LiveAsset]) -> None:
        data = {"kind": DIRECTORY, "items": [asset.to_dict() for asset in assets]}
        self._store.remember_asset(key, fingerprint, data, reason=None, restorable=False)

    def remember_unreadable(self, item: Unreadable) -> None:
        """Unreadable files are listed by `lmd status` with their reason."""
        self._store.remember_asset(item.key or str(item.path), "", item.to_dict(),
                                   reason=item.reason, restorable=False)


class ScanAction(StrEnum):
    """What a scan did about one file it found (`run_scan`'s `on_asset`)."""

    ENQUEUED = "enqueued"  # a new job
    MOVED = "moved"  # its job follows the files to their new place
    COPY = "copy"  # the same content as another asset still in its place: that one's job
    UNCHANGED = "unchanged"  # a job with these inputs exists already
    ALREADY_REPLACED = "already replaced"  # replace mode: the target is lmd's output
    OUTPUT_MOVED = "restored, moved"  # lmd's replaced still, found under a new path
    OWN_OUTPUT = "lmd's own output"  # an input is lmd's output (or an edit of one): no input
    NOT_RESTORABLE = "not restorable"  # not reselected, or no usable reference (see reason)
    UNREADABLE = "unreadable"


@dataclass
class ScanSummary:
    scan_id: int
    root: Path
    files_seen: int = 0
    assets_found: int = 0
    restorable: int = 0
    enqueued: int = 0
    moved: int = 0
    #: replaced stills found under a new path ("restored, moved")
    outputs_moved: int = 0
    #: assets left alone because an input is lmd's own output (or an edit of one)
    own_outputs: int = 0
    #: new video jobs (`[video] enabled`; `enqueued` counts still jobs)
    videos_enqueued: int = 0
    unreadable: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "scan_id": self.scan_id,
            "root": str(self.root),
            "files_seen": self.files_seen,
            "assets_found": self.assets_found,
            "restorable": self.restorable,
            "enqueued": self.enqueued,
            "moved": self.moved,
            "outputs_moved": self.outputs_moved,
            "own_outputs": self.own_outputs,
            "videos_enqueued": self.videos_enqueued,
            "unreadable": self.unreadable,
        }


def pinned_output(settings: Settings, asset: LiveAsset) -> OutputSpec:
    """How and where this asset's output will be written under the current settings, to be
    pinned on its job. Replace mode needs a still to replace: an asset whose frame comes from
    the video gets a sidecar in the output tree instead, and the job says so."""
    out = settings.output
    mode, location = out.mode, out.location
    if mode == "replace" and asset.target is None:
        mode, location = "sidecar", "tree"
    library = settings.library if settings.library is not None else asset.reference.parent
    return OutputSpec(
        mode=mode,
        location=location,
        root=Path(library),
        tree=None if out.tree is None else Path(out.tree),
        suffix=out.suffix,
        backup_dir=None if out.backup_dir is None else Path(out.backup_dir),
        jpeg_quality=out.jpeg_quality,
        heic_quality=out.heic_quality,
        naming=out.naming if location == "beside" else "suffix",
    )


def job_spec(asset: LiveAsset, settings: Settings, weights: str) -> JobSpec:
    """The job for `asset` under the current settings: everything the worker will read from
    the row (restorer, weights, parameters, output) is pinned here and digested into the
    identity, so a config change makes new jobs and never changes a queued one."""
    params = dict(settings.restorer.params)
    output = pinned_output(settings, asset)
    identity = job_identity(
        {role: sig.to_dict() for role, sig in asset.signatures.items()},
        asset.t1,
        settings.restorer.name,
        weights,
        params,
        output.to_dict(),
    )
    return JobSpec(
        identity=identity,
        asset_key=asset.key,
        payload=asset.to_dict(),
        restorer=settings.restorer.name,
        weights_digest=weights,
        params=params,
        output=output,
        max_attempts=settings.worker.max_attempts,
    )


def ignore_patterns(settings: Settings, root: Path) -> list[str]:
    """Discovery's defaults (dot-files...), NAS/sync clutter from settings, and lmd's own
    outputs: the output tree when it lies inside the library, and `beside` outputs.

    Patterns match names, so the tree is ignored by its own name (``2026/lmd-out`` →
    ``lmd-out``), never by the library folder it sits in, which holds photos to scan."""
    patterns = list(dict.fromkeys([*DEFAULT_IGNORE, *settings.scan.ignore]))
    patterns.append(f"*{settings.output.suffix}.*")
    if settings.output.naming == "photoprism":
        patterns.append(f"*{PHOTOPRISM_STACK_SUFFIX}.*")
    tree = settings.output.tree
    if tree is not None:
        try:
            relative = Path(tree).resolve().relative_to(root.resolve())
        except ValueError:
            pass
        else:
            patterns.append(relative.name if relative.parts else str(tree))
    return patterns


def run_scan(
    settings: Settings,
    root: Path | None = None,
    progress: Callable[[int], None] | None = None,
    *,
    store: JobStore | None = None,
    trigger: str = "manual",
    weights: str | None = None,
    on_asset: Callable[[LiveAsset | Unreadable, ScanAction], None] | None = None,
) -> ScanSummary:
    """Scan `root` (default: the library), enqueue what needs restoring, record the scan.

    `on_asset` hears of every Live Photo and unreadable file with what the scan did about it
    (`ScanAction`), for `lmd scan --json`'s `assets`."""
    if settings.library is None:
        raise ScanError("no library configured: set `library` (lmd scan --dry-run PATH works "
                        "without one)")
    library = Path(settings.library)
    root = Path(root or library)
    if not Path(os.path.realpath(root)).is_relative_to(os.path.realpath(library)):
        raise ScanError(f"{root} is outside the configured library {library}; outputs and job "
                        "keys are relative to the library (use --dry-run to inspect it)")
    own_store = store is None
    store = store or open_store(settings.database_url)
    weights = weights if weights is not None else configured_weights_digest(settings)
    summary = ScanSummary(scan_id=store.start_scan(str(root), trigger), root=root)
    log.info("scan_started", path=str(root), trigger=trigger)

    def counted(n: int) -> None:
        summary.files_seen = n
        if progress:
            progress(n)

    cache = StoreAssetCache(store)
    video_digest: list[str] = []  # the clip restorer's weights, digested once per scan

    def videos() -> str:
        if not video_digest:
            video_digest.append(video_weights(settings))
        return video_digest[0]

    try:
        for found in discover(
            root,
            cache=cache,
            ignore=ignore_patterns(settings, root),
            progress=counted,
            key_root=library,
        ):
            if isinstance(found, Unreadable):
                summary.unreadable += 1
                summary.problems.append((found.key, found.reason))
                cache.remember_unreadable(found)
                log.warning("file_unreadable", path=str(found.path), error=found.reason)
                if on_asset:
                    on_asset(found, ScanAction.UNREADABLE)
                continue
            action = _record(store, found, settings, weights, summary, videos)
            if on_asset:
                on_asset(found, action)
    finally:
        store.finish_scan(
            summary.scan_id,
            files_seen=summary.files_seen,
            assets_found=summary.assets_found,
            enqueued=summary.enqueued,
            unreadable=summary.unreadable,
        )
        if own_store:
            store.close()
    log.info("scan_finished", **summary.as_dict())
    return summary


def _record(
    store: JobStore, asset: LiveAsset, settings: Settings, weights: str, summary: ScanSummary,
    video_weights: Callable[[], str],
) -> ScanAction:
    summary.assets_found += 1
    if settings.video.enabled or asset.restorable:
        # a MOV replaced by its video job stands for its original (`daemon.video_scan`)
        asset = with_original_video(store, asset)
    if enqueue_video(store, asset, settings, video_weights):
        summary.videos_enqueued += 1
        log.info("video_job_enqueued", asset=asset.key)
    if not asset.restorable:
        if asset.reason:
            summary.problems.append((asset.key, asset.reason))
            log.info("asset_not_restorable", asset=asset.key, path=str(asset.reference),
                     error=asset.reason)
        return ScanAction.NOT_RESTORABLE
    summary.restorable += 1
    own = store.find_outputs(sig.content_hash for sig in asset.signatures.values())
    target = asset.signatures.get("target")
    if target is not None and target.content_hash in own:
        return _restored(store, asset, own[target.content_hash], settings, weights, summary)
    if own:
        return _not_an_input(asset, summary, "an input is lmd's own output")
    if settings.output.mode == "replace" and _already_replaced(store, asset):
        return ScanAction.ALREADY_REPLACED
    spec = job_spec(asset, settings, weights)
    if store.job_with_identity(spec.identity) is None:
        writer = _lmd_provenance(asset)
        if writer is not None:
            return _unindexed_output(store, asset, writer, settings, weights, summary)
    return _enqueue(store, spec, asset, summary)


def _enqueue(
    store: JobStore, spec: JobSpec, asset: LiveAsset, summary: ScanSummary
) -> ScanAction:
    copy = copy_of(store, spec)
    if copy is not None:
        log.info("asset_is_copy", asset=asset.key, job_id=copy)
        return ScanAction.COPY
    result = store.enqueue(spec)
    if result.created:
        summary.enqueued += 1
        log.info("job_enqueued", job_id=result.job_id, asset=asset.key)
        return ScanAction.ENQUEUED
    if result.moved:
        summary.moved += 1
        log.info("job_moved", job_id=result.job_id, asset=asset.key)
        return ScanAction.MOVED
    return ScanAction.UNCHANGED


def _not_an_input(asset: LiveAsset, summary: ScanSummary, why: str) -> ScanAction:
    summary.own_outputs += 1
    log.info("asset_is_lmd_output", asset=asset.key, path=str(asset.target or asset.reference),
             reason=why)
    return ScanAction.OWN_OUTPUT


def _restored(
    store: JobStore, asset: LiveAsset, output: Any, settings: Settings, weights: str,
    summary: ScanSummary,
) -> ScanAction:
    """The target is lmd's output of job `output.job_id` (replace mode). Under a new path, its
    job and index row follow it ("restored, moved"). Its input is the original that job
    restored (kept in the backups): under the current settings that is the same job (nothing
    to do), or new work from that original (another restorer, parameters or output mode)."""
    job = store.get_job(output.job_id)
    recorded = (job.payload.get("signatures") or {}).get("target") if job else None
    if job is None or recorded is None:
        return _not_an_input(asset, summary, "the target is lmd's output")
    original = dataclasses.replace(
        asset, signatures={**asset.signatures, "target": FileSignature.from_dict(recorded)}
    )
    moved = output.path != str(asset.target)
    if moved:
        # lmd's output still where it was written: the one found here is a copy of it
        if still_there(Path(output.path), target_hash(asset)):
            return _not_an_input(asset, summary, f"a copy of lmd's output {output.path}")
        store.output_moved(output.id, str(asset.target), asset.key, original.to_dict())
        summary.outputs_moved += 1
        log.info("output_moved", job_id=job.id, path=str(asset.target), previous=output.path)
    # the same job again (its signatures follow a touched input), or new work from the original
    action = _enqueue(store, job_spec(original, settings, weights), original, summary)
    return ScanAction.OUTPUT_MOVED if moved and action == ScanAction.UNCHANGED else action


def target_hash(asset: LiveAsset) -> str:
    return asset.signatures["target"].content_hash


#: lmd's XMP namespace, as `daemon.output.xmp.LMD_NS` writes it (the scanner may not import the
#: writer; a test holds the two equal)
LMD_NS = "https://lmd.invalid/ns/1.0/"


def _lmd_provenance(asset: LiveAsset) -> int | None:
    """The job named by the provenance lmd writes into its outputs' XMP, when a still of the
    asset carries it (0: lmd's, the job unknown), else None. Read only for assets that would
    make a new job."""
    for path in (asset.target, asset.reference):
        if path is None:
            continue
        try:
            packet = read_still_meta(path).xmp
            if not packet:
                continue
            ours = [el for el in parse_packet(packet).root.iter() if split(el.tag)[0] == LMD_NS]
        except UnreadableFile:
            continue
        if ours:
            named = [el.text for el in ours if split(el.tag)[1] == "job_id"]
            try:
                return int(named[0]) if named and named[0] else 0
            except ValueError:
                return 0
    return None


def _unindexed_output(
    store: JobStore, asset: LiveAsset, job_id: int, settings: Settings, weights: str,
    summary: ScanSummary,
) -> ScanAction:
    """A still carrying lmd's provenance whose content is not in the index: lmd's output edited
    by a person, or written by a worker killed before it could record it. Never an input. Where
    it moved, the job its provenance names follows it (under the same identity: a skipped job
    is queued again), and so do that job's index row and the record of its original."""
    why = "its still carries lmd's provenance (lmd's output, edited or not yet recorded)"
    job = store.get_job(job_id) if job_id else None
    recorded = (job.payload.get("signatures") or {}).get("target") if job else None
    if job is None or recorded is None or asset.target is None:
        return _not_an_input(asset, summary, why)
    original = dataclasses.replace(
        asset, signatures={**asset.signatures, "target": FileSignature.from_dict(recorded)}
    )
    spec = job_spec(original, settings, weights)
    if spec.identity == job.identity:
        store.enqueue(spec)
    for row in reversed(store.outputs_of_job(job.id)):
        if row.record and row.path != str(asset.target) and not Path(row.path).exists():
            store.output_moved(row.id, str(asset.target), asset.key, original.to_dict())
            summary.outputs_moved += 1
            break
    return _not_an_input(asset, summary, why)


def _already_replaced(store: JobStore, asset: LiveAsset) -> bool:
    """In replace mode the target becomes lmd's output; its new content must not look like a
    fresh reselection. A target whose hash equals a succeeded job's output is done.

    Every rescan meets every replaced target again, so the stat signature decides first, as it
    does everywhere in a rescan: another size cannot be our output, and the same size and
    mtime is; a touched file of the same size is ours when its content digest (which discovery
    already took) is the recorded one, checked with the recorded digest's algorithm.
    """
    seen = asset.signatures.get("target")
    if asset.target is None or seen is None:
        return False
    for job in store.jobs_for_asset(asset.key):
        written = job.output_signature or {}
        if job.kind != "still" or job.state != JobState.SUCCEEDED:
            continue
        if not written.get("content_hash"):
            continue
        if written.get("size") != seen.size:
            continue
        if written.get("mtime_ns") == seen.mtime_ns:
            return True
        if hashing.same_content(written["content_hash"], seen.content_hash, asset.target):
            return True
    return False
