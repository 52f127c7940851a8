"""Library discovery: walk a tree, group files into Live Photos, decide, never raise.

`discover(root, cache=..., ignore=..., progress=...)` yields one `Discovery` per Live Photo or
Motion Photo found (a `LiveAsset`, possibly with a `reason` when it is not restorable) and one
`Unreadable` per media file that could not be examined. Plain photos and videos are not
yielded. The walk never follows a symbolic link out of the root, never descends into linked
directories, and only opens regular files.

Caching: every group has a stat fingerprint (size, mtime_ns, inode of each member). When an
`AssetCache` knows the fingerprint, the cached asset is returned without reading any content;
caches that also implement `PlainFileCache` remember groups that are not Live Photos, so an
unchanged rescan reads no file content at all.
"""

from __future__ import annotations

import fnmatch
import os
import re
import stat
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import structlog

from daemon.library import decide as rules
from daemon.library.aae import AaeInfo, read_aae
from daemon.library.asset import FileSignature, LiveAsset, Platform
from daemon.library.errors import UnreadableFile
from daemon.library.exif import apple_content_identifier
from daemon.library.hashing import fingerprint, signature
from daemon.library.motion import MotionInfo, read_motion
from daemon.library.naming import NamedFile, Role, classify, group_key
from daemon.library.quicktime import MovInfo, read_mov_info
from daemon.library.stills import StillMeta, read_still_meta

log = structlog.get_logger(__name__)

DEFAULT_IGNORE: tuple[str, ...] = ("@eaDir", ".stfolder", "#recycle", "#snapshot", ".*", ".lmd")


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A media file discovery could not examine, and why."""

    key: str
    path: Path
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "unreadable",
            "key": self.key,
            "path": str(self.path),
            "reason": self.reason,
        }


Discovery = LiveAsset | Unreadable


class AssetCache(Protocol):
    """Where discovery remembers groups by stat fingerprint (the store provides a DB one)."""

    def lookup(self, key: str, fingerprint: str) -> LiveAsset | None: ...

    def remember(self, key: str, fingerprint: str, asset: LiveAsset) -> None: ...


@runtime_checkable
class PlainFileCache(Protocol):
    """Optional: remember groups that are *not* Live Photos, so rescans skip them too."""

    def is_plain(self, key: str, fingerprint: str) -> bool: ...

    def remember_plain(self, key: str, fingerprint: str) -> None: ...


@runtime_checkable
class DirectoryCache(Protocol):
    """Optional: remember what a whole directory yielded, keyed by the stat fingerprint of all
    its media files. An unchanged directory is then answered with one lookup, without grouping
    its files: an unchanged rescan costs little more than listing and stat-ing the tree.
    Only directories that yielded no `Unreadable` are remembered (a permission problem or a
    transient I/O error must be looked at again next time)."""

    def lookup_directory(self, key: str, fingerprint: str) -> list[LiveAsset] | None: ...

    def remember_directory(self, key: str, fingerprint: str, assets: list[LiveAsset]) -> None: ...


class DictAssetCache:
    """In-memory `AssetCache` + `PlainFileCache` + `DirectoryCache` (tests, benchmarks)."""

    def __init__(self) -> None:
        self.assets: dict[str, tuple[str, LiveAsset]] = {}
        self.plain: dict[str, str] = {}
        self.directories: dict[str, tuple[str, list[LiveAsset]]] = {}

    def lookup_directory(self, key: str, fingerprint: str) -> list[LiveAsset] | None:
        hit = self.directories.get(key)
        return hit[1] if hit and hit[0] == fingerprint else None

    def remember_directory(self, key: str, fingerprint: str, assets: list[LiveAsset]) -> None:
        self.directories[key] = (fingerprint, list(assets))

    def lookup(self, key: str, fingerprint: str) -> LiveAsset | None:
        hit = self.assets.get(key)
        return hit[1] if hit and hit[0] == fingerprint else None

    def remember(self, key: str, fingerprint: str, asset: LiveAsset) -> None:
        self.assets[key] = (fingerprint, asset)
        self.plain.pop(key, None)

    def is_plain(self, key: str, fingerprint: str) -> bool:
        return self.plain.get(key) == fingerprint

    def remember_plain(self, key: str, fingerprint: str) -> None:
        self.plain[key] = fingerprint
        self.assets.pop(key, None)


@dataclass(frozen=True, slots=True)
class _Entry:
    directory: Path
    named: NamedFile
    size: int
    mtime_ns: int
    inode: int

    @property
    def path(self) -> Path:
        return self.directory / self.named.name

    @property
    def stat_tuple(self) -> tuple[str, int, int, int]:
        return (self.named.name, self.size, self.mtime_ns, self.inode)


def ignore_matcher(patterns: Sequence[str]) -> Callable[[str], bool]:
    """One compiled regex for all ignore patterns (fnmatch syntax, matched on names)."""
    if not patterns:
        return lambda name: False
    regex = re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))
    return lambda name: regex.match(name) is not None


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def discover(
    root: Path,
    *,
    cache: AssetCache | None = None,
    ignore: Sequence[str] = DEFAULT_IGNORE,
    progress: Callable[[int], None] | None = None,
    key_root: Path | None = None,
) -> Iterator[Discovery]:
    """Walk `root` and yield every Live Photo / Motion Photo and every unreadable media file.

    Keys are relative to `key_root` (default: `root`): scanning one folder of a library gives
    its assets the same keys as a scan of the whole library, so nothing looks moved.
    """
    try:
        real_root = Path(os.path.realpath(root))
        if not real_root.is_dir():
            yield Unreadable("", Path(root), "library root is not a directory")
            return
    except OSError as exc:
        yield Unreadable("", Path(root), f"cannot open library root: {exc}")
        return
    ignored = ignore_matcher(ignore)
    scanner = _Scanner(real_root, cache, progress)
    if key_root is not None:
        scanner.key_root = Path(os.path.realpath(key_root))
    stack = [real_root]
    while stack:
        directory = stack.pop()
        entries: list[_Entry] = []
        problems: list[Unreadable] = []
        subdirs: list[Path] = []
        try:
            with os.scandir(directory) as it:
                listing = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            yield Unreadable(scanner.rel(directory), directory, f"cannot list: {exc.strerror}")
            continue
        for de in listing:
            name = de.name
            if ignored(name):
                continue
            try:
                if de.is_symlink():
                    path = Path(de.path)
                    item = scanner.check_link(path)
                    if isinstance(item, Unreadable):
                        problems.append(item)
                        continue
                    if item is None:  # a link to a directory inside the root: not descended
                        continue
                elif de.is_dir(follow_symlinks=False):
                    subdirs.append(Path(de.path))
                    continue
                named = classify(name)
                if named is None:
                    continue
                st = de.stat()
            except OSError as exc:
                path = Path(de.path)
                problems.append(Unreadable(scanner.rel(path), path, _os_reason(exc)))
                continue
            if not stat.S_ISREG(st.st_mode):
                path = Path(de.path)
                problems.append(Unreadable(scanner.rel(path), path, "not a regular file"))
                continue
            entries.append(_Entry(directory, named, st.st_size, st.st_mtime_ns, st.st_ino))
        yield from problems
        if problems:
            yield from scanner.directory(directory, entries)
        else:
            yield from scanner.directory_cached(directory, entries)
        stack.extend(reversed(subdirs))


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "vanished during the scan"
    if exc.errno == 40:  # ELOOP
        return "symlink loop"
    return f"cannot stat: {exc.strerror or exc}"


class _Scanner:
    """Per-scan state: the root, the cache and the progress counter."""

    def __init__(
        self, root: Path, cache: AssetCache | None, progress: Callable[[int], None] | None
    ) -> None:
        self.root = root
        self.key_root = root
        self.cache = cache
        self.plain_cache = cache if isinstance(cache, PlainFileCache) else None
        self.dir_cache = cache if isinstance(cache, DirectoryCache) else None
        self.progress = progress
        self.done = 0
        self._key_dir: Path | None = None
        self._key_prefix = ""

    def rel(self, path: Path) -> str:
        try:
            return _nfc(path.relative_to(self.key_root).as_posix())
        except ValueError:
            return _nfc(path.as_posix())

    def check_link(self, path: Path) -> Unreadable | Path | None:
        """A symlink's verdict: Unreadable (loop, dangling, outside), None (dir), or path."""
        try:
            target = Path(os.path.realpath(path, strict=True))
        except (OSError, RuntimeError) as exc:
            reason = (
                "symlink loop"
                if "loop" in str(exc).lower() or getattr(exc, "errno", None) == 40
                else "dangling symlink"
            )
            return Unreadable(self.rel(path), path, reason)
        if not target.is_relative_to(self.root):
            return Unreadable(self.rel(path), path, "symlink leaves the library root")
        if target.is_dir():
            return None
        return path

    def _tick(self, n: int) -> None:
        self.done += n
        if self.progress is not None:
            try:
                self.progress(self.done)
            except Exception:  # a broken progress callback must not stop the scan
                log.warning("progress_callback_failed", exc_info=True)

    def directory_cached(self, directory: Path, entries: list[_Entry]) -> Iterator[Discovery]:
        """`directory`, answered from the `DirectoryCache` when nothing in it changed."""
        if self.dir_cache is None or not entries:
            yield from self.directory(directory, entries)
            return
        key = "dir:" + self.rel(directory)
        fp = fingerprint(e.stat_tuple for e in entries)
        hit = self.dir_cache.lookup_directory(key, fp)
        if hit is not None:
            self._tick(len(entries))
            yield from hit
            return
        found = list(self.directory(directory, entries))
        if all(isinstance(d, LiveAsset) for d in found):
            self.dir_cache.remember_directory(key, fp, found)  # type: ignore[arg-type]
        yield from found

    def directory(self, directory: Path, entries: list[_Entry]) -> Iterator[Discovery]:
        groups: dict[str, list[_Entry]] = {}
        for e in entries:
            groups.setdefault(group_key(e.named.base), []).append(e)
        repair_stills: list[tuple[_Entry, str, StillMeta]] = []
        lone_videos: list[_Entry] = []
        for members in groups.values():
            try:
                yield from self._group(directory, members, repair_stills, lone_videos)
            except Exception as exc:  # last line of defence: discovery never raises
                log.error("discover_group_failed", path=str(members[0].path), error=repr(exc))
                yield Unreadable(
                    self.rel(members[0].path),
                    members[0].path,
                    f"internal error: {type(exc).__name__}",
                )
            self._tick(len(members))
        if repair_stills and lone_videos:
            try:
                yield from self._repair_by_cid(directory, repair_stills, lone_videos)
            except Exception as exc:
                log.error("discover_repair_failed", path=str(directory), error=repr(exc))

    def _key(self, directory: Path, base: str) -> str:
        if directory != self._key_dir:
            rel = self.rel(directory)
            self._key_dir, self._key_prefix = directory, ("" if rel == "." else rel + "/")
        return self._key_prefix + _nfc(base)

    def _group(
        self,
        directory: Path,
        members: list[_Entry],
        repair_stills: list[tuple[_Entry, str, StillMeta]],
        lone_videos: list[_Entry],
    ) -> Iterator[Discovery]:
        by_role: dict[Role, list[_Entry]] = {}
        for e in members:
            by_role.setdefault(e.named.role, []).append(e)
        stills = sorted(by_role.get(Role.STILL, []), key=_still_rank)
        videos = by_role.get(Role.VIDEO, [])
        base = (stills or videos or members)[0].named.base
        key = self._key(directory, base)
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
            probed: list[tuple[_Entry, StillMeta, MotionInfo | None]] = []
            for still in stills:
                try:
                    meta = read_still_meta(still.path)
                    probed.append((still, meta, read_motion(still.path, meta)))
                except UnreadableFile as exc:
                    found.append(Unreadable(self.rel(still.path), still.path, exc.reason))
            motions = [(s, m) for s, _, m in probed if m is not None]
            targets = by_role.get(Role.EDITED_STILL, []) + [s for s, _, m in probed if m is None]
            for still, motion in motions:
                target = targets.pop(0) if targets else None
                mkey = key if len(motions) == 1 else self.rel(still.path)
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
        stills: list[_Entry],
        videos: list[_Entry],
        by_role: dict[Role, list[_Entry]],
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
                return LiveAsset(
                    **partial,
                    t0=None,
                    t1=None,
                    reselected=False,
                    reason="ContentIdentifier of the still and the video differ",
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
            return LiveAsset(
                **partial,
                t0=None,
                t1=None,
                reselected=False,
                reason=f"unreadable: {exc.reason}",
                content_identifier=cid,
            )
        return LiveAsset(
            **partial | {"target": decision.target},
            t0=decision.t0,
            t1=decision.t1,
            reselected=decision.reselected,
            reason=decision.reason,
            signatures=signatures,
            content_identifier=cid,
            other_adjustments=aae_info.other_adjustments if aae_info else (),
        )

    def _motion(
        self, key: str, still: _Entry, motion: MotionInfo, target: _Entry | None
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
            return LiveAsset(
                **partial, t0=None, t1=None, reselected=False, reason=f"unreadable: {exc.reason}"
            )
        return LiveAsset(
            **partial | {"target": decision.target},
            t0=decision.t0,
            t1=decision.t1,
            reselected=decision.reselected,
            reason=decision.reason,
            signatures=signatures,
        )

    def _repair_by_cid(
        self,
        directory: Path,
        stills: list[tuple[_Entry, str, StillMeta]],
        videos: list[_Entry],
    ) -> Iterator[Discovery]:
        """Pair stills and videos whose names differ but whose ContentIdentifiers agree."""
        by_cid: dict[str, _Entry] = {}
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
            key = self._key(directory, still.named.base)
            fp = fingerprint([still.stat_tuple, video.stat_tuple])
            hit = self.cache.lookup(key, fp) if self.cache is not None else None
            if hit is not None:
                yield hit
                continue
            asset = self._apple(key, [still], [video], {}, cid_checked=cid)
            if self.cache is not None:
                self.cache.remember(key, fp, asset)
            yield asset


def _still_rank(e: _Entry) -> tuple[int, str]:
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


def _signatures(entries: dict[str, _Entry | None]) -> dict[str, FileSignature]:
    return {name: signature(e.path) for name, e in entries.items() if e is not None}
