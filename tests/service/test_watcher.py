"""The watcher: real filesystem events, debounced until files are stable and paired."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from daemon.watcher import Debouncer, LibraryWatcher, choose_mode, explain_inotify_error


def test_debouncer_waits_for_stable_size_and_mtime(tmp_path: Path) -> None:
    clip = tmp_path / "IMG_0001.MOV"
    clip.write_bytes(b"x" * 10)
    debouncer = Debouncer(settle_seconds=5)
    debouncer.touch(clip, now=0)
    assert debouncer.poll(now=3) == []
    with clip.open("ab") as handle:  # still being copied
        handle.write(b"more")
    assert debouncer.poll(now=4) == []
    assert debouncer.poll(now=8) == []  # stable only since t=4
    assert debouncer.poll(now=9.5) == [clip]
    assert len(debouncer) == 0


def test_debouncer_holds_a_still_until_its_video_arrives(tmp_path: Path) -> None:
    still = tmp_path / "IMG_0002.HEIC"
    still.write_bytes(b"heic")
    debouncer = Debouncer(settle_seconds=1, pair_grace=100)
    debouncer.touch(still, now=0)
    assert debouncer.poll(now=5) == []
    (tmp_path / "IMG_0002.MOV").write_bytes(b"mov")
    assert debouncer.poll(now=6) == [still]


def test_debouncer_gives_up_waiting_after_the_grace(tmp_path: Path) -> None:
    still = tmp_path / "IMG_0003.JPG"
    still.write_bytes(b"jpeg")
    debouncer = Debouncer(settle_seconds=1, pair_grace=10)
    debouncer.touch(still, now=0)
    assert debouncer.poll(now=5) == []
    assert debouncer.poll(now=11) == [still]


@pytest.mark.parametrize(
    ("still", "video"),
    [
        ("IMG_0004.avif", "IMG_0004.MOV"),  # stills the watcher's own list did not know
        ("IMG_0005.png", "IMG_0005.mov"),
        ("IMG_0006-adjusted.HEIC", "IMG_0006_HEVC.MOV"),  # icloudpd
        ("IMG_E0007.JPG", "IMG_0007.MOV"),  # Apple's edited still
        ("IMG_0008.heic", "IMG_0008_hevc.mov"),  # lower-cased by an export tool
        ("clip_edited.jpeg", "clip.mp4"),
        (os.fsdecode(b"\xe9t\xe9.HEIC"), os.fsdecode(b"\xe9t\xe9.MOV")),  # not UTF-8
    ],
)
def test_debouncer_pairs_stills_and_videos_as_discovery_names_them(
    tmp_path: Path, still: str, video: str
) -> None:
    """Every still naming knows is held for its video, and every video naming knows releases it
    (the watcher's own suffix lists missed .avif, .png, -adjusted, .mp4 and lower-case _hevc)."""
    (tmp_path / still).write_bytes(b"s")
    debouncer = Debouncer(settle_seconds=1, pair_grace=100)
    debouncer.touch(tmp_path / still, now=0)
    (tmp_path / "other.MOV").write_bytes(b"m")  # another group's video releases nothing
    assert debouncer.poll(now=5) == []
    (tmp_path / video).write_bytes(b"v")
    assert debouncer.poll(now=6) == [tmp_path / still]


def test_handler_marks_only_names_discovery_looks_at(tmp_path: Path) -> None:
    """A text file, a partial download or a thumbnail database is not a photo: it must not ask
    for a rescan. Photos, videos and sidecars (AAE) do."""
    from watchdog.events import FileCreatedEvent, FileMovedEvent

    from daemon.watcher import _Handler

    debouncer = Debouncer(settle_seconds=1)
    handler = _Handler(debouncer, tmp_path, ignore=())
    for name in ("notes.txt", "IMG_0009.HEIC.part", "Thumbs.db", "IMG_0009"):
        handler.dispatch(FileCreatedEvent(str(tmp_path / name)))
    assert len(debouncer) == 0
    for name in ("IMG_0009.HEIC", "IMG_0009.AAE", "IMG_0009.avif"):
        handler.dispatch(FileCreatedEvent(str(tmp_path / name)))
    handler.dispatch(FileMovedEvent(str(tmp_path / "x.tmp"), str(tmp_path / "clip.MP4")))
    assert len(debouncer) == 4


def _watch(tmp_path: Path, mode: str, interval: float = 0.2):
    ready: list[Path] = []
    got = threading.Event()

    def on_ready(paths: list[Path]) -> None:
        ready.extend(paths)
        got.set()

    watcher = LibraryWatcher(tmp_path, mode, interval, 0.5, on_ready, ignore=("@eaDir",))
    watcher.start()
    return watcher, ready, got


def test_inotify_reports_new_pairs_and_ignores_clutter(tmp_path: Path) -> None:
    watcher, ready, got = _watch(tmp_path, "inotify")
    try:
        assert watcher.mode == "inotify"
        (tmp_path / "@eaDir").mkdir()
        (tmp_path / "@eaDir" / "thumb.jpg").write_bytes(b"t")
        (tmp_path / ".hidden.jpg").write_bytes(b"h")
        (tmp_path / "sub").mkdir()
        (tmp_path / "sub" / "IMG_0100.MOV").write_bytes(b"m" * 100)
        (tmp_path / "sub" / "IMG_0100.HEIC").write_bytes(b"h" * 100)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(set(ready)) < 2:
            got.wait(0.2)
        names = sorted(p.name for p in set(ready))
        assert names == ["IMG_0100.HEIC", "IMG_0100.MOV"]
    finally:
        watcher.stop()


HOSTILE_DIRS = [b"album-\xff\xfe", b"new\nline", b"-rf", "Cafe\u0301".encode(), b"d" * 255]


@pytest.mark.parametrize("mode", ["inotify", "polling"])
def test_any_name_the_filesystem_allows_is_watched(tmp_path: Path, mode: str) -> None:
    """Directories and files whose names are not UTF-8, hold a newline, start with a dash, are
    decomposed Unicode or 255 bytes long are seen, paired and handed on with the very bytes
    they have on disk."""
    watcher, ready, got = _watch(tmp_path, mode)
    expected: set[bytes] = set()
    try:
        for raw in HOSTILE_DIRS:
            directory = tmp_path / os.fsdecode(raw)
            directory.mkdir()
            for name in (b"IMG_\xe90001.HEIC", b"IMG_\xe90001.MOV", b"-" + b"v" * 250 + b".MOV"):
                path = directory / os.fsdecode(name)
                path.write_bytes(b"x" * 10)
                expected.add(os.fsencode(path))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and {os.fsencode(p) for p in ready} != expected:
            got.wait(0.2)
        assert {os.fsencode(p) for p in ready} == expected
    finally:
        watcher.stop()


def test_a_failing_event_does_not_end_the_watcher(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception while marking one path would end watchdog's thread and with it every later
    event; the watcher logs it and carries on."""
    import daemon.watcher as watcher_module

    real_classify = watcher_module.classify

    def classify(name: str) -> object:  # stands in for naming.classify
        if name.startswith("boom"):
            raise ValueError("a bug in the handler")
        return real_classify(name)

    monkeypatch.setattr(watcher_module, "classify", classify)
    watcher, ready, got = _watch(tmp_path, "inotify")
    try:
        (tmp_path / "boom.MOV").write_bytes(b"b")
        (tmp_path / "IMG_0011.MOV").write_bytes(b"v")
        assert got.wait(10)
        assert [p.name for p in ready] == ["IMG_0011.MOV"]
    finally:
        watcher.stop()


def test_polling_observer_sees_changes(tmp_path: Path) -> None:
    watcher, ready, got = _watch(tmp_path, "polling", interval=0.2)
    try:
        assert watcher.mode == "polling"
        (tmp_path / "clip.mp4").write_bytes(b"v" * 50)
        assert got.wait(10)
        assert [p.name for p in ready] == ["clip.mp4"]
    finally:
        watcher.stop()


def test_auto_mode_uses_inotify_on_local_disk(tmp_path: Path) -> None:
    assert choose_mode("auto", tmp_path) == "inotify"
    assert choose_mode("polling", tmp_path) == "polling"


def test_inotify_limit_message_says_what_to_do(tmp_path: Path) -> None:
    import errno

    (tmp_path / "a" / "b").mkdir(parents=True)
    message = explain_inotify_error(OSError(errno.ENOSPC, "inotify watch limit reached"), tmp_path)
    assert "fs.inotify.max_user_watches" in message
    assert "3 directories" in message
    assert "polling instead" in message


WATCH_AS_NOBODY = r"""
import ctypes, errno, os, sys, threading, time
from pathlib import Path
import watchdog.observers.inotify, watchdog.observers.polling
from daemon.watcher import LibraryWatcher

# inotify limits are per user: become one whose instances we can use up (imports are done
# first, as root, because the interpreter's files may not be readable by that user)
os.setgroups([])
os.setgid(65534)
os.setuid(65534)
libc = ctypes.CDLL(None, use_errno=True)
held = []
while True:  # use up this user's inotify instances, as a busy desktop or NAS would
    fd = libc.inotify_init1(0)
    if fd < 0:
        assert ctypes.get_errno() == errno.EMFILE, ctypes.get_errno()
        break
    held.append(fd)
root = Path(sys.argv[1])
seen = threading.Event()
watcher = LibraryWatcher(root, "inotify", 0.2, 0.2, lambda paths: seen.set())
watcher.start()
print("mode", watcher.mode)
print("reason", watcher.fallback_reason)
(root / "IMG_0001.MOV").write_bytes(b"x")
print("event", seen.wait(10))
watcher.stop()
"""


def test_inotify_instance_limit_falls_back_to_polling() -> None:
    """A real kernel limit, hit for real: the watcher says why and polls instead."""
    import os
    import shutil
    import subprocess
    import sys
    import tempfile

    if os.geteuid() != 0:
        import pytest

        pytest.skip("needs root to run the watcher as another user with its own limits")
    root = Path(tempfile.mkdtemp(prefix="lmd-watch-"))
    try:
        root.chmod(0o777)
        out = subprocess.run(
            [sys.executable, "-c", WATCH_AS_NOBODY, str(root)],
            cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True,
            timeout=60, env={**os.environ, "HOME": str(root)},
        )
        assert out.returncode == 0, out.stderr
        assert "mode polling" in out.stdout
        assert "inotify instance limit reached" in out.stdout
        assert "event True" in out.stdout
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_library_under_a_dot_directory_is_still_watched(tmp_path: Path) -> None:
    """Only names below the library root are judged: `/srv/.photos` must not hide everything,
    and fnmatch patterns from settings (like discovery's) apply to names."""
    library = tmp_path / ".photos"
    library.mkdir()
    ready: list[Path] = []
    got = threading.Event()

    def on_ready(paths: list[Path]) -> None:
        ready.extend(paths)
        got.set()

    watcher = LibraryWatcher(library, "inotify", 0.2, 0.3, on_ready, ignore=("#recycle*",))
    watcher.start()
    try:
        (library / "#recycle-bin").mkdir()
        (library / "#recycle-bin" / "old.mp4").write_bytes(b"o" * 20)
        (library / "clip.mp4").write_bytes(b"v" * 50)
        assert got.wait(10)
        # old.mp4 was marked first and would be stable no later than clip.mp4: had it not been
        # ignored, it would have been handed on in the same poll or an earlier one
        assert [p.name for p in ready] == ["clip.mp4"]
    finally:
        watcher.stop()
