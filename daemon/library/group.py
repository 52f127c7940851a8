"""Grouping one directory's files into Live Photos and Motion Photos, and reading each group.

Names give the first guess (`naming.group_key`: IMG_1234.HEIC, IMG_1234.MOV, IMG_E1234.HEIC and
IMG_1234.AAE are one group); the files' own metadata confirms it (Apple ContentIdentifier, the
Motion Photo XMP or trailer), and `decide` makes the reselection decision. Stills and videos
whose names do not pair are paired by ContentIdentifier afterwards (`_repair_by_cid`: exports
that rename files). A group whose stat fingerprint a cache knows is answered without reading.
Grouping never raises: a reader's refusal becomes the asset's `reason` or an `Unreadable`, and
anything else is caught per group, logged, and reported as an internal error for that group.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import structlog

from daemon.files.errors import UnreadableFile
from daemon.files.exif import apple_content_identifier
from daemon.files.signature import fingerprint, signature
from daemon.library import decide as rules
from daemon.library.aae import AaeInfo, read_aae
from daemon.library.asset import FileSignature, LiveAsset, Platform
from daemon.library.cache import AssetCache, PlainFileCache
from daemon.library.motion import MotionInfo, read_motion
from daemon.library.naming import Role, group_key
from daemon.library.quicktime import MovInfo, read_mov_info
from daemon.library.stills import StillMeta, read_still_meta
from daemon.library.walk import LibraryKeys, ListedFile, Unreadable

log = structlog.get_logger(__name__)

#: What discovery yields: a Live Photo / Motion Photo, or a media file it could not examine.
Discovery = LiveAsset | Unreadable


def _undecided(partial: dict[str, Any], reason: str, **extra: Any) -> LiveAsset:
    """An asset the rules could not decide on: no times, not reselected, `reason` says why."""
    return LiveAsset(**partial, t0=None, t1=None, reselected=False, reason=reason, **extra)


def _decided(
    partial: dict[str, Any],
    decision: rules.Decision,
    signatures: dict[str, FileSignature],
    **extra: Any,
) -> LiveAsset:
    """An asset as the rules decided it; the decision's target replaces the first guess."""
    return LiveAsset(
        **partial | {"target": decision.target},
        t0=decision.t0,
        t1=decision.t1,
        reselected=decision.reselected,
        reason=decision.reason,
        signatures=signatures,
        **extra,
    )


class AssetGrouper:
    """Groups directories of one scan; holds what the whole scan shares: how keys are made, the
    caches that answer unchanged groups, and whom to tell how many files are done."""

    def __init__(
        self,
        keys: LibraryKeys,
        cache: AssetCache | None,
        on_files_done: Callable[[int], None],
    ) -> None:
        self.keys = keys
        self.cache = cache
        self.plain_cache = cache if isinstance(cache, PlainFileCache) else None
        self.on_files_done = on_files_done

    def group(self, directory: Path, files: list[ListedFile]) -> Iterator[Discovery]:
        """The Live Photos among one directory's `files`, and what could not be examined."""
        groups: dict[str, list[ListedFile]] = {}
        for e in files:
            groups.setdefault(group_key(e.named.base), []).append(e)
        repair_stills: list[tuple[ListedFile, str, StillMeta]] = []
        lone_videos: list[ListedFile] = []
        for members in groups.values():
            try:
                yield from self._group(directory, members, repair_stills, lone_videos)
            except Exception as exc:  # last line of defence: discovery never raises
                log.error("discover_group_failed", path=str(members[0].path), error=repr(exc))
                yield Unreadable(
                    self.keys.rel(members[0].path),
                    members[0].path,
                    f"internal error: {type(exc).__name__}",
                )
            self.on_files_done(len(members))
        if repair_stills and lone_videos:
            try:
                yield from self._repair_by_cid(directory, repair_stills, lone_videos)
            except Exception as exc:
                log.error("discover_repair_failed", path=str(directory), error=repr(exc))

    def _group(
        self,
        directory: Path,
        members: list[ListedFile],
        repair_stills: list[tuple[ListedFile, str, StillMeta]],
        lone_videos: list[ListedFile],
    ) -> Iterator[Discovery]:
        by_role: dict[Role, list[ListedFile]] = {}
        for e in members:
            by_role.setdefault(e.named.role, []).append(e)
        stills = sorted(by_role.get(Role.STILL, []), key=_still_rank)
        videos = by_role.get(Role.VIDEO, [])
        base = (stills or videos or members)[0].named.base
        key = self.keys.key(directory, base)
        fp = fingerprint(e.stat_tuple for e in members)
        if self.cache is not None:
            hit = self.cache.lookup(key, fp)
            if hit is not None:
                yield hit
                return
            if self.plain_cache is not None and self.plain_cache.is_plain(key, fp):
                return
        found: list[Discovery] = []
        may_repair = False
        if stills and videos:
            found.append(self._apple(key, stills, videos, by_role))
        elif stills:
            probed: list[tuple[ListedFile, StillMeta, MotionInfo | None]] = []
            for still in stills:
                try:
                    meta = read_still_meta(still.path)
                    probed.append((still, meta, read_motion(still.path, meta)))
                except UnreadableFile as exc:
                    found.append(Unreadable(self.keys.rel(still.path), still.path, exc.reason))
            motions = [(s, m) for s, _, m in probed if m is not None]
            targets = by_role.get(Role.EDITED_STILL, []) + [s for s, _, m in probed if m is None]
            for still, motion in motions:
                target = targets.pop(0) if targets else None
                mkey = key if len(motions) == 1 else self.keys.rel(still.path)
                found.append(self._motion(mkey, still, motion, target))
            for still, meta, motion in probed:
                cid = _cid_or_none(meta) if motion is None else None
                if cid is not None:
                    repair_stills.append((still, cid, meta))
                    may_repair = True
        elif videos:
            lone_videos.extend(videos)
            may_repair = True
        if self.cache is not None:
            assets = [d for d in found if isinstance(d, LiveAsset)]
            if len(assets) == 1 and len(found) == 1 and assets[0].key == key:
                self.cache.remember(key, fp, assets[0])
            elif not found and not may_repair and self.plain_cache is not None:
                self.plain_cache.remember_plain(key, fp)
        yield from found

    def _apple(
        self,
        key: str,
        stills: list[ListedFile],
        videos: list[ListedFile],
        by_role: dict[Role, list[ListedFile]],
        cid_checked: str | None = None,
    ) -> LiveAsset:
        reference, video = stills[0], videos[0]
        edited_stills = by_role.get(Role.EDITED_STILL, []) + stills[1:]
        edited = edited_stills[0] if edited_stills else None
        edited_video = (by_role.get(Role.EDITED_VIDEO) or [None])[0]
        aae = (by_role.get(Role.AAE) or [None])[0]
        aae_o = (by_role.get(Role.AAE_ORIGINAL) or [None])[0]
        sidecars = tuple(e.path for e in (aae, aae_o, edited_video) if e is not None)
        partial = {
            "key": key,
            "platform": Platform.APPLE,
            "reference": reference.path,
            "video": video.path,
            "target": edited.path if edited else None,
            "sidecars": sidecars,
        }
        cid: str | None = cid_checked
        try:
            if cid is None:
                cid = _cid_or_none(read_still_meta(reference.path))
            mov = read_mov_info(video.path)
            if cid and mov.content_identifier and cid != mov.content_identifier.upper():
                return _undecided(
                    partial,
                    "ContentIdentifier of the still and the video differ",
                    content_identifier=cid,
                )
            cid = cid or mov.content_identifier
            aae_info: AaeInfo | None = read_aae(aae.path) if aae else None
            edited_mov: MovInfo | None = read_mov_info(edited_video.path) if edited_video else None
            decision = rules.decide(
                reference=reference.path,
                video=rules.VideoRef(video.path),
                t0=mov.still_image_time,
                frame_duration=mov.frame_duration,
                edited_still=edited.path if edited else None,
                aae=aae_info,
                edited_mov=edited_mov,
            )
            signatures = _signatures(
                {
                    "reference": reference,
                    "video": video,
                    "target": edited,
                    "aae": aae,
                    "aae_original": aae_o,
                    "edited_video": edited_video,
                }
            )
        except UnreadableFile as exc:
            return _undecided(partial, f"unreadable: {exc.reason}", content_identifier=cid)
        return _decided(
            partial,
            decision,
            signatures,
            content_identifier=cid,
            other_adjustments=aae_info.other_adjustments if aae_info else (),
        )

    def _motion(
        self, key: str, still: ListedFile, motion: MotionInfo, target: ListedFile | None
    ) -> LiveAsset:
        partial = {
            "key": key,
            "platform": Platform.ANDROID_MOTION,
            "reference": still.path,
            "video": still.path,
            "target": target.path if target else None,
            "video_offset": motion.video_offset,
            "video_length": motion.video_length,
        }
        try:
            mov = read_mov_info(still.path, motion.video_offset, motion.video_length)
            t0 = rules.motion_t0(motion.presentation_us, mov)
            if target is None:
                decision = rules.Decision(t0, t0, False, None, None)
            else:
                decision = rules.decide(
                    reference=still.path,
                    video=rules.VideoRef(still.path, motion.video_offset, motion.video_length),
                    t0=t0,
                    frame_duration=mov.frame_duration,
                    edited_still=target.path,
                )
            signatures = _signatures({"reference": still, "target": target})
        except UnreadableFile as exc:
            return _undecided(partial, f"unreadable: {exc.reason}")
        return _decided(partial, decision, signatures)

    def _repair_by_cid(
        self,
        directory: Path,
        stills: list[tuple[ListedFile, str, StillMeta]],
        videos: list[ListedFile],
    ) -> Iterator[Discovery]:
        """Pair stills and videos whose names differ but whose ContentIdentifiers agree."""
        by_cid: dict[str, ListedFile] = {}
        for v in videos:
            try:
                cid = read_mov_info(v.path).content_identifier
            except UnreadableFile:
                continue
            if cid:
                by_cid.setdefault(cid.upper(), v)
        for still, cid, _meta in stills:
            video = by_cid.pop(cid, None)
            if video is None:
                continue
            key = self.keys.key(directory, still.named.base)
            fp = fingerprint([still.stat_tuple, video.stat_tuple])
            hit = self.cache.lookup(key, fp) if self.cache is not None else None
            if hit is not None:
                yield hit
                continue
            asset = self._apple(key, [still], [video], {}, cid_checked=cid)
            if self.cache is not None:
                self.cache.remember(key, fp, asset)
            yield asset



def _still_rank(e: ListedFile) -> tuple[int, str]:
    """HEIC before JPEG: with both present, the JPEG is icloudpd's adjusted rendition."""
    ext = e.named.name.rsplit(".", 1)[-1].lower()
    return ({"heic": 0, "heif": 0}.get(ext, 1), e.named.name)


def _cid_or_none(meta: StillMeta) -> str | None:
    if meta.exif is None:
        return None
    try:
        cid = apple_content_identifier(meta.exif)
    except UnreadableFile:
        return None
    return cid.upper() if cid else None


def _signatures(entries: dict[str, ListedFile | None]) -> dict[str, FileSignature]:
    return {name: signature(e.path) for name, e in entries.items() if e is not None}
