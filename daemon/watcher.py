"""Filesystem watching: a hint that something changed, never the source of truth.

watchdog's inotify observer is used on local disks and its polling observer on network and
FUSE mounts (inotify never sees writes made by another NFS/SMB client). Events only mark paths
as dirty, and only the names discovery would look at (`library.naming` is the one home of what
a still, a video and a sidecar are, so the two never disagree). A path is handed on once its
size and mtime have stayed the same for `debounce_seconds` (a photo still being copied over
Samba is not read half-written), and a Live Photo still is held until its video has arrived
too. The scheduled reconciliation scan remains the ground truth, because watchers drop events
(inotify queue overflow, remounts).
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from daemon.fsinfo import filesystem_type, is_network_fs
from daemon.library.naming import Role, classify, group_key
from daemon.library.walk import ignore_matcher

log = structlog.get_logger(__name__)

#: Stills that are one half of a Live Photo: held until a video of their group is there.
_PAIRED_STILLS = frozenset({Role.STILL, Role.EDITED_STILL})
#: How long a still waits for its video before it is handed on anyway (the scan decides then).
PAIR_GRACE_SECONDS = 120.0


def choose_mode(mode: str, library: Path) -> str:
    """"auto" → polling on network/FUSE filesystems, inotify elsewhere."""
    if mode != "auto":
        return mode
    return "polling" if is_network_fs(library) else "inotify"


def _ignored(path: Path, root: Path, ignored_name: Callable[[str], bool]) -> bool:
    """Dot-names and ignored names (discovery's own matcher), judged only below the library
    root: a library that itself lives under a dot-directory (e.g. ``/srv/.photos``) must not
    have every event dropped."""
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        parts = path.parts
    return any(part.startswith(".") or ignored_name(part) for part in parts)


def _stat_key(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def video_groups(directory: Path) -> frozenset[str]:
    """Group keys of the original videos in `directory`, by discovery's naming rules (so
    IMG_1234.HEIC, IMG_E1234.HEIC and IMG_1234-adjusted.HEIC all find IMG_1234_HEVC.MOV or
    img_1234_hevc.mp4). One listing answers every still waiting in the directory."""
    try:
        with os.scandir(directory) as it:
            names = [entry.name for entry in it]
    except OSError:
        return frozenset()
    groups = set()
    for name in names:
        named = classify(name)
        if named is not None and named.role is Role.VIDEO:
            groups.add(group_key(named.base))
    return frozenset(groups)


def has_video_sibling(still: Path) -> bool:
    """Whether the video of a Live Photo still is present beside it."""
    named = classify(still.name)
    return named is not None and group_key(named.base) in video_groups(still.parent)


@dataclass
class _Pending:
    key: tuple[int, int] | None
    stable_since: float
    first_seen: float


class Debouncer:
    """Collects changed paths and releases them once they are stable (and paired).

    `poll(now)` is pure bookkeeping over `stat`, so tests drive it with explicit times.
    """

    def __init__(self, settle_seconds: float, pair_grace: float = PAIR_GRACE_SECONDS) -> None:
        self.settle = settle_seconds
        self.pair_grace = pair_grace
        self._pending: dict[Path, _Pending] = {}
        self._lock = threading.Lock()

    def touch(self, path: Path, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            entry = self._pending.get(path)
            key = _stat_key(path)
            if entry is None:
                self._pending[path] = _Pending(key, now, now)
            elif entry.key != key:
                entry.key, entry.stable_since = key, now

    def poll(self, now: float | None = None) -> list[Path]:
        now = time.monotonic() if now is None else now
        ready: list[Path] = []
        videos: dict[Path, frozenset[str]] = {}  # one listing per directory per poll
        with self._lock:
            for path, entry in list(self._pending.items()):
                key = _stat_key(path)
                if key != entry.key:
                    entry.key, entry.stable_since = key, now
                    continue
                if now - entry.stable_since < self.settle:
                    continue
                waiting_for_video = (
                    key is not None
                    and now - entry.first_seen < self.pair_grace
                    and not self._has_video(path, videos)
                )
                if waiting_for_video:
                    continue
                del self._pending[path]
                ready.append(path)
        return ready

    @staticmethod
    def _has_video(path: Path, videos: dict[Path, frozenset[str]]) -> bool:
        """True unless `path` is a Live Photo still whose video is not there yet."""
        named = classify(path.name)
        if named is None or named.role not in _PAIRED_STILLS:
            return True
        if path.parent not in videos:
            videos[path.parent] = video_groups(path.parent)
        return group_key(named.base) in videos[path.parent]

    def __len__(self) -> int:
        return len(self._pending)


class _Handler(FileSystemEventHandler):
    def __init__(self, debouncer: Debouncer, root: Path, ignore: Sequence[str]) -> None:
        self._debouncer = debouncer
        self._root = Path(os.path.abspath(root))
        self._ignored_name = ignore_matcher(ignore)

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory or event.event_type in {"opened", "closed_no_write"}:
            return
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            if not raw:
                continue
            try:
                self._mark(Path(os.fsdecode(raw)))
            except Exception:  # an exception here would end watchdog's thread: no more events
                log.error("watcher_event_failed", path=repr(raw), exc_info=True)

    def _mark(self, path: Path) -> None:
        if classify(path.name) is None:
            return  # not a photo, video or sidecar discovery would look at
        if not _ignored(path, self._root, self._ignored_name):
            self._debouncer.touch(path)


class LibraryWatcher:
    """Watches the library and calls `on_ready(paths)` with debounced, stable paths."""

    def __init__(
        self,
        library: Path,
        mode: str,
        polling_interval: float,
        debounce_seconds: float,
        on_ready: Callable[[list[Path]], None],
        ignore: Sequence[str] = (),
    ) -> None:
        self.library = library
        self.requested_mode = mode
        self.mode = choose_mode(mode, library)
        self.polling_interval = polling_interval
        self.debouncer = Debouncer(debounce_seconds)
        self._on_ready = on_ready
        self._ignore = tuple(ignore)
        self._observer: BaseObserver | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.fallback_reason: str | None = None

    def start(self) -> None:
        if self.mode == "off":
            log.info("watcher_off", path=str(self.library))
            return
        try:
            self._observer = self._start_observer(self.mode)
        except OSError as exc:
            if self.mode != "inotify":
                raise
            self.fallback_reason = explain_inotify_error(exc, self.library)
            log.warning("watcher_fallback_to_polling", path=str(self.library),
                        error=self.fallback_reason)
            self.mode = "polling"
            self._observer = self._start_observer("polling")
        log.info("watcher_started", path=str(self.library), mode=self.mode,
                 fs=filesystem_type(self.library))
        self._thread = threading.Thread(target=self._drain, name="watcher-debounce", daemon=True)
        self._thread.start()

    def _start_observer(self, mode: str) -> BaseObserver:
        observer: BaseObserver
        if mode == "polling":
            observer = PollingObserver(timeout=self.polling_interval)
        else:
            observer = Observer()
        observer.schedule(_Handler(self.debouncer, self.library, self._ignore), str(self.library),
                          recursive=True)
        observer.start()
        return observer

    def _drain(self) -> None:
        tick = max(0.2, min(1.0, self.debouncer.settle / 4 or 0.2))
        while not self._stop.wait(tick):
            ready = self.debouncer.poll()
            if ready:
                try:
                    self._on_ready(ready)
                except Exception as exc:  # the scan will catch up; never kill the watcher
                    log.error("watcher_callback_failed", error=str(exc), exc_info=True)

    def stop(self) -> None:
        self._stop.set()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
        if self._thread is not None:
            self._thread.join(timeout=5)


def count_directories(root: Path, limit: int = 1_000_000) -> int:
    count = 0
    for _dirpath, _dirnames, _files in os.walk(root):
        count += 1
        if count >= limit:
            break
    return count


def suggested_max_watches(directories: int) -> int:
    """What to raise fs.inotify.max_user_watches to: room to double, at least the common 512Ki."""
    return max(directories * 2, 524288)


def inotify_limits() -> dict[str, int | None]:
    values: dict[str, int | None] = {}
    for name in ("max_user_watches", "max_user_instances", "max_queued_events"):
        try:
            values[name] = int(Path(f"/proc/sys/fs/inotify/{name}").read_text().strip())
        except (OSError, ValueError):
            values[name] = None
    return values


def explain_inotify_error(exc: OSError, library: Path) -> str:
    """Turn ENOSPC/EMFILE into what the person should do about it."""
    limits = inotify_limits()
    if exc.errno == errno.ENOSPC or "watch limit" in str(exc):
        dirs = count_directories(library)
        return (
            f"inotify watch limit reached ({limits['max_user_watches']} watches, the library "
            f"has about {dirs} directories); raise it with "
            f"`sysctl fs.inotify.max_user_watches={suggested_max_watches(dirs)}` "
            "(persist in /etc/sysctl.d/); polling instead"
        )
    if exc.errno == errno.EMFILE or "instance limit" in str(exc):
        return (
            f"inotify instance limit reached ({limits['max_user_instances']}); raise "
            "fs.inotify.max_user_instances; polling instead"
        )
    return f"inotify failed ({exc}); polling instead"
