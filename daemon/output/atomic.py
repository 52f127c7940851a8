"""Crash-safe file writes: temporary file, fsync, (fence,) rename, directory fsync.

Why this order: a rename is atomic on POSIX, so readers (photo tools, Syncthing, the scanner)
see either the old file or the complete new one. fsync of the data before the rename and of the
directory after it makes the new name durable across a power cut. The temporary name starts with
a dot and `.lmd-tmp-`, so the scanner, Immich (hidden files skipped) and PhotoPrism (dot files
ignored) never pick up a half-written file, and a crash leaves a name that is easy to sweep. It
is short (30 bytes: a tag of the final name plus a random part), so any name the filesystem
allows, up to NAME_MAX, can be written.

Every write happens relative to a directory opened without following symlinks below its root
(`daemon.output.beneath`), and the rename replaces the directory entry: a target that is a
symlink or has other hard links is replaced, never written through. An optional fence, called
under the directory's lock immediately before the rename, lets the worker refuse the commit
when its job's lease is gone (`FenceLost`): the temporary file is then removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import stat
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from core import hashing
from daemon.files.signature import FileSignature, written_signature
from daemon.output.beneath import Directory, fsync_dir, open_directory
from daemon.output.errors import OutputError, ReadOnlyLibrary, UnsafePath, os_failure
from daemon.output.filemeta import FileMeta, apply_xattrs

__all__ = [
    "TEMP_PREFIX",
    "Fence",
    "atomic_symlink",
    "atomic_write",
    "atomic_write_bytes",
    "check_writable",
    "copy_fd",
    "entry_identity",
    "identity_of",
    "signature_of",
    "signature_of_fd",
    "temp_name_for",
    "unchanged_fence",
    "write_all",
]

TEMP_PREFIX = ".lmd-tmp-"
_TAG_HEX = 12  # 48 bits of the final name's hash: which final name a leftover belongs to
_CHUNK = 1 << 20

Fence = Callable[[], None]
"""Called immediately before a rename; raises (`FenceLost`) when the writer lost its lease."""


def signature_of(path: Path) -> FileSignature:
    """The signature of a written file (a whole-file digest named by `core.hashing`)."""
    return written_signature(path)


def signature_of_fd(fd: int) -> FileSignature:
    """The signature of an open file, read from its start (the descriptor's offset is kept)."""
    digest = hashing.digest_fd(fd)
    st = os.fstat(fd)
    return FileSignature(size=st.st_size, mtime_ns=st.st_mtime_ns, content_hash=digest)


def _tag(final_name: str) -> str:
    return hashlib.sha256(os.fsencode(final_name)).hexdigest()[:_TAG_HEX]


def temp_name_for(final_name: str) -> str:
    """A fresh temporary name for `final_name`, 30 bytes whatever its length."""
    return f"{TEMP_PREFIX}{_tag(final_name)}-{secrets.token_hex(4)}"


def _is_temp_for(name: str, for_name: str | None) -> bool:
    if not name.startswith(TEMP_PREFIX):
        return False
    if for_name is None:
        return True
    # `.lmd-tmp-<random>-<final name>` is how lmd named temporary files before short names.
    return name.startswith(f"{TEMP_PREFIX}{_tag(for_name)}-") or name.endswith(f"-{for_name}")


def _sweep(directory: Directory, for_name: str | None) -> list[str]:
    removed: list[str] = []
    with os.scandir(directory.fd) as entries:
        found = [
            e.name
            for e in entries
            if _is_temp_for(e.name, for_name)
            and (e.is_symlink() or e.is_file(follow_symlinks=False))
        ]
    for name in found:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=directory.fd)
            removed.append(name)
    return removed


def _finish(
    fd: int,
    mode: int,
    owner: tuple[int, int] | None,
    xattrs: Mapping[str, bytes] | None,
    mtime_ns: int | None,
) -> None:
    if owner is not None:
        with contextlib.suppress(OSError):
            os.fchown(fd, *owner)
    os.fchmod(fd, mode)  # after chown, which clears set-id bits; the umask must not narrow it
    if xattrs:
        apply_xattrs(fd, xattrs)
    if mtime_ns is not None:
        os.utime(fd, ns=(mtime_ns, mtime_ns))
    os.fsync(fd)


def _place(directory: Directory, temp: str, final: Path, fence: Fence | None) -> None:
    """Fence, then rename `temp` onto `final`'s name, under the directory's lock."""
    with directory.locked():
        if fence is not None:
            fence()
        try:
            os.replace(temp, final.name, src_dir_fd=directory.fd, dst_dir_fd=directory.fd)
        except OSError as exc:
            raise os_failure(exc, "cannot rename into place", final) from exc


def _discard(directory: Directory, temp: str, final: Path, exc: BaseException) -> OutputError:
    """Remove the temporary file; the error to raise for `exc` (base exceptions re-raised)."""
    with contextlib.suppress(OSError):
        os.unlink(temp, dir_fd=directory.fd)
    if isinstance(exc, OutputError):
        return exc
    if isinstance(exc, OSError):
        return os_failure(exc, "writing failed for", final)
    if isinstance(exc, Exception):
        return OutputError(f"writing {final} failed: {exc}")
    raise exc


@contextlib.contextmanager
def _discarded_on_failure(directory: Directory, temp: str, final: Path) -> Iterator[None]:
    """The steps from a created temporary file to its rename: on any failure the temporary file
    is removed and the error raised is `_discard`'s (base exceptions propagate as they are)."""
    try:
        yield
    except BaseException as exc:
        error = _discard(directory, temp, final, exc)
        if error is exc:
            raise
        raise error from exc


def atomic_write(
    final: Path,
    writer: Callable[[int], None],
    *,
    mode: int = 0o644,
    verify: Callable[[Path], None] | None = None,
    mtime_ns: int | None = None,
    owner: tuple[int, int] | None = None,
    xattrs: Mapping[str, bytes] | None = None,
    root: Path | None = None,
    create_dirs: bool = False,
    fence: Fence | None = None,
    staged: Callable[[FileSignature], None] | None = None,
) -> FileSignature:
    """Write `final` atomically; `writer(fd)` writes the content into an open temp file.

    `verify(temp)` runs on the fsynced temp file before it takes the final name (e.g. decode the
    image once); `mtime_ns` and `xattrs` restore a timestamp and extended attributes (backups,
    reverts); `owner` is applied best effort. `root`: no symlink below it is followed on the way
    to `final`'s directory (`UnsafePath`); `create_dirs` makes missing directories. `fence()`
    runs immediately before the rename; whatever it raises (`FenceLost`) stops the commit.
    `staged(signature)` runs after `verify`, before the fence: replace mode names the output in
    its record there, so a crash right after the rename leaves an output its record names.
    Any failure removes the temp file and raises `OutputError` (a `PermanentOutputError` for a
    read-only library, a name too long or a symlink in the way); the final name is untouched.
    Returns the signature of the bytes that took the final name.
    """
    final = Path(os.path.abspath(final))
    with open_directory(final.parent, root, create=create_dirs) as directory:
        directory.check_name(final.name)
        # A writer killed mid-write (SIGKILL, power loss) leaves its temporary file behind; the
        # next write of the same destination is the retry of that job, so it clears them first.
        # Only one job writes a given destination at a time (its lease), so this is never live.
        _sweep(directory, final.name)
        temp = temp_name_for(final.name)
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(temp, flags, mode, dir_fd=directory.fd)
        except OSError as exc:
            raise os_failure(exc, "cannot create a file in", directory.path) from exc
        with _discarded_on_failure(directory, temp, final):
            try:
                writer(fd)
                _finish(fd, mode, owner, xattrs, mtime_ns)
                signature = signature_of_fd(fd)
            finally:
                os.close(fd)
            if verify is not None:
                verify(directory.entry(temp))
            if staged is not None:
                staged(signature)
            _place(directory, temp, final, fence)
        fsync_dir(directory.fd)
    return signature


def atomic_symlink(
    final: Path,
    link: str,
    *,
    meta: FileMeta | None = None,
    root: Path | None = None,
    fence: Fence | None = None,
) -> None:
    """Make `final` a symlink to `link` atomically (a temp symlink renamed over it), with the
    owner and mtime of `meta` on the link itself (best effort)."""
    final = Path(os.path.abspath(final))
    with open_directory(final.parent, root) as directory:
        directory.check_name(final.name)
        _sweep(directory, final.name)
        temp = temp_name_for(final.name)
        try:
            os.symlink(link, temp, dir_fd=directory.fd)
        except OSError as exc:
            raise os_failure(exc, "cannot create a symlink in", directory.path) from exc
        with _discarded_on_failure(directory, temp, final):
            if meta is not None:
                with contextlib.suppress(OSError):
                    os.chown(temp, meta.uid, meta.gid, dir_fd=directory.fd, follow_symlinks=False)
                with contextlib.suppress(OSError, NotImplementedError):
                    os.utime(
                        temp,
                        ns=(meta.mtime_ns, meta.mtime_ns),
                        dir_fd=directory.fd,
                        follow_symlinks=False,
                    )
            _place(directory, temp, final, fence)
        fsync_dir(directory.fd)


def entry_identity(path: Path) -> tuple[int, ...] | None:
    """What says a directory entry is still the same file: lstat's inode, type, size, mtime."""
    try:
        return identity_of(os.lstat(path))
    except FileNotFoundError:
        return None


def identity_of(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_dev, st.st_ino, st.st_mode, st.st_size, st.st_mtime_ns)


def unchanged_fence(
    path: Path, expected: tuple[int, ...] | None, fence: Fence | None = None
) -> Fence:
    """A fence that also refuses when `path` is no longer the file lmd looked at (a photo tool
    saved a new version meanwhile): replacing it would lose that version."""

    def check() -> None:
        if fence is not None:
            fence()
        if entry_identity(path) != expected:
            raise OutputError(f"{path} changed while lmd was writing; left as it is, retry later")

    return check


def write_all(fd: int, data: bytes | memoryview) -> None:
    """os.write until everything is written (short writes happen near size limits)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def copy_fd(source_fd: int, fd: int) -> None:
    """Copy an open file from its start into `fd` (the source's offset is kept)."""
    offset = 0
    while chunk := os.pread(source_fd, _CHUNK, offset):
        write_all(fd, chunk)
        offset += len(chunk)


def atomic_write_bytes(final: Path, data: bytes, **kwargs: object) -> FileSignature:
    """`atomic_write` for content already in memory."""
    return atomic_write(final, lambda fd: write_all(fd, data), **kwargs)  # type: ignore[arg-type]


def check_writable(destination: Path, root: Path | None = None) -> None:
    """Fail fast, before anything is computed, when `destination` cannot be written: its
    filesystem is mounted read-only or lmd may not write there (`ReadOnlyLibrary`), a name on
    the way is too long (`NameTooLong`), a symlink is in the way below `root` or a directory
    sits at the destination (`UnsafePath`). Writing checks all of this again; this only spares
    a restoration whose result could never be written."""
    destination = Path(os.path.abspath(destination))
    names = [destination.name]
    existing = destination.parent
    while not os.path.lexists(existing) and existing != existing.parent:
        names.append(existing.name)
        existing = existing.parent
    with open_directory(existing, root) as directory:
        for name in names:
            directory.check_name(name)
        if existing == destination.parent:
            with contextlib.suppress(FileNotFoundError):
                st = os.stat(destination.name, dir_fd=directory.fd, follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    raise UnsafePath(f"a directory is in the way: {destination}")
        with contextlib.suppress(OSError):
            if os.fstatvfs(directory.fd).f_flag & os.ST_RDONLY:
                raise ReadOnlyLibrary(
                    f"library is read-only: {directory.path} is on a read-only mount"
                )
        effective = os.access in os.supports_effective_ids
        if not os.access(".", os.W_OK | os.X_OK, dir_fd=directory.fd, effective_ids=effective):
            raise ReadOnlyLibrary(f"library is not writable by lmd: {directory.path}")
