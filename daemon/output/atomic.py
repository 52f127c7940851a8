"""Crash-safe file writes: temporary file, fsync, rename, directory fsync.

Why this order: a rename is atomic on POSIX, so readers (photo tools, Syncthing, the scanner)
see either the old file or the complete new one. fsync of the data before the rename and of the
directory after it makes the new name durable across a power cut. The temporary name starts with
a dot and `.lmd-tmp-`, so the scanner, Immich (hidden files skipped) and PhotoPrism (dot files
ignored) never pick up a half-written file, and a crash leaves a name that is easy to sweep.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from daemon.files.signature import FileSignature
from daemon.output.errors import OutputError

TEMP_PREFIX = ".lmd-tmp-"
_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's content, read in chunks (photos can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def signature_of(path: Path) -> FileSignature:
    st = path.stat()
    return FileSignature(size=st.st_size, mtime_ns=st.st_mtime_ns, content_hash=sha256_file(path))


def fsync_dir(directory: Path) -> None:
    """Make a rename inside `directory` durable; a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems (e.g. certain FUSE mounts) refuse fsync on directories
        pass
    finally:
        os.close(fd)


def make_parents(directory: Path) -> None:
    """Create `directory` and missing parents, fsyncing each new entry's parent (durable mkdir)."""
    missing: list[Path] = []
    current = Path(directory)
    while not current.exists():
        missing.append(current)
        current = current.parent
    for new in reversed(missing):
        try:
            new.mkdir(exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create directory {new}: {exc.strerror or exc}") from exc
        fsync_dir(new.parent)


def temp_path_for(final: Path) -> Path:
    """A fresh temporary name in the final file's directory (same filesystem, so rename works)."""
    return final.with_name(f"{TEMP_PREFIX}{secrets.token_hex(4)}-{final.name}")


def sweep_temp_files(directory: Path, for_name: str | None = None) -> list[Path]:
    """Remove temporary files a crash left in `directory` (only those for the final file
    `for_name`, when given); returns what it removed."""
    removed: list[Path] = []
    with contextlib.suppress(FileNotFoundError):
        for entry in directory.iterdir():
            ours = for_name is None or entry.name.endswith(f"-{for_name}")
            if entry.name.startswith(TEMP_PREFIX) and ours and entry.is_file():
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
                    removed.append(entry)
    return removed


def atomic_write(
    final: Path,
    writer: Callable[[int], None],
    *,
    mode: int = 0o644,
    verify: Callable[[Path], None] | None = None,
    mtime_ns: int | None = None,
    owner: tuple[int, int] | None = None,
) -> FileSignature:
    """Write `final` atomically; `writer(fd)` writes the content into an open temp file.

    `verify(temp)` runs on the fsynced temp file before it takes the final name (e.g. decode the
    image once); `mtime_ns` restores a timestamp (backups, reverts); `owner` is applied best
    effort. Any failure (ENOSPC, EFBIG from a size limit, a failed verify) removes the temp file
    and raises `OutputError`; the final name is then untouched.
    """
    final = Path(final)
    directory = final.parent
    if not directory.is_dir():
        raise OutputError(f"output directory does not exist: {directory}")
    # A writer killed mid-write (SIGKILL, power loss) leaves its temporary file behind; the
    # next write of the same destination is the retry of that job, so it clears them first.
    # Only one job writes a given destination at a time (its lease), so this is never live.
    sweep_temp_files(final.parent, for_name=final.name)
    temp = temp_path_for(final)
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), mode)
    except OSError as exc:
        raise OutputError(f"cannot create a file in {directory}: {exc.strerror or exc}") from exc
    try:
        try:
            writer(fd)
            os.fchmod(fd, mode)  # the umask must not narrow a replaced file's permissions
            if owner is not None:
                with contextlib.suppress(OSError):
                    os.fchown(fd, *owner)
            os.fsync(fd)
        finally:
            os.close(fd)
        if mtime_ns is not None:
            os.utime(temp, ns=(mtime_ns, mtime_ns))
        if verify is not None:
            verify(temp)
        signature = signature_of(temp)
        os.replace(temp, final)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        if isinstance(exc, OutputError):
            raise
        if isinstance(exc, Exception):
            raise OutputError(f"writing {final} failed: {exc}") from exc
        raise
    fsync_dir(directory)
    return signature


def write_all(fd: int, data: bytes | memoryview) -> None:
    """os.write until everything is written (short writes happen near size limits)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def atomic_write_bytes(final: Path, data: bytes, **kwargs: object) -> FileSignature:
    """`atomic_write` for content already in memory."""
    return atomic_write(final, lambda fd: write_all(fd, data), **kwargs)  # type: ignore[arg-type]


def atomic_copy(source: Path, final: Path, *, preserve: bool = True) -> FileSignature:
    """Copy `source` to `final` atomically, keeping its mode, owner and mtime when `preserve`."""
    st = source.stat()

    def copy(fd: int) -> None:
        with open(source, "rb") as src:
            while chunk := src.read(_CHUNK):
                write_all(fd, chunk)

    return atomic_write(
        final,
        copy,
        mode=(st.st_mode & 0o7777) if preserve else 0o644,
        mtime_ns=st.st_mtime_ns if preserve else None,
        owner=(st.st_uid, st.st_gid) if preserve else None,
    )
