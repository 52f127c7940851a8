"""Open the directory a file is written in without following a symlink below the root.

A library is untrusted and changes under lmd: a folder can be swapped for a symlink to
`/etc` between planning and writing. Every write therefore opens the configured root (the
library or the output tree, which a person chose) and then each directory below it with
`O_NOFOLLOW | O_DIRECTORY`, relative to its parent's descriptor; the file operations that follow
(`openat`, `renameat`, `symlinkat`) are made relative to the final directory's descriptor. A
directory swapped after it was opened does not matter either: lmd keeps writing into the
directory it opened, never into where a path points now.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from daemon.output.errors import NameTooLong, OutputError, UnsafePath, os_failure

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_PROC_FD = Path("/proc/self/fd")
DEFAULT_NAME_MAX = 255


def fsync_dir(directory: Path | int) -> None:
    """Make a rename inside `directory` (a path or an open descriptor) durable; a no-op where
    directories cannot be opened or fsynced (some FUSE mounts refuse)."""
    if isinstance(directory, int):
        with contextlib.suppress(OSError):
            os.fsync(directory)
        return
    try:
        fd = os.open(directory, _DIR_FLAGS)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
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
            raise os_failure(exc, "cannot create directory", new) from exc
        fsync_dir(new.parent)


def root_of(destination: Path, relative: Path) -> Path:
    """The root a destination lies in, given its path relative to that root (same depth):
    `/lib/2024/IMG.HEIC` with `2024/IMG.HEIC` → `/lib`."""
    depth = len(Path(relative).parts)
    if depth == 0:
        raise OutputError(f"empty relative path for {destination}")
    return Path(os.path.abspath(destination)).parents[depth - 1]


class Directory:
    """An open directory descriptor (`fd`) and the path it was opened by (`path`, for messages
    and for callbacks that need a path)."""

    def __init__(self, fd: int, path: Path) -> None:
        self.fd = fd
        self.path = path

    def __enter__(self) -> Directory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def entry(self, name: str) -> Path:
        """A path that reaches `name` in this very directory even if the directory was moved
        or swapped since it was opened (through /proc on Linux, the path elsewhere)."""
        if _PROC_FD.is_dir():
            return _PROC_FD / str(self.fd) / name
        return self.path / name

    def name_max(self) -> int:
        try:
            return int(os.fpathconf(self.fd, "PC_NAME_MAX"))
        except (OSError, ValueError):
            return DEFAULT_NAME_MAX

    def check_name(self, name: str) -> None:
        """`NameTooLong` when `name` cannot exist in this directory's filesystem."""
        size, limit = len(os.fsencode(name)), self.name_max()
        if size > limit:
            raise NameTooLong(
                f"name too long for the filesystem ({size} bytes, at most {limit}): "
                f"{self.path / name}"
            )

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold an exclusive advisory lock on this directory (best effort: some network
        filesystems have none). lmd's commits and undos of one directory take it, so an undo
        never interleaves between another writer's fence check and its rename."""
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            held = True
        except OSError:
            held = False
        try:
            yield
        finally:
            if held:
                fcntl.flock(self.fd, fcntl.LOCK_UN)


def _open_path(directory: Path) -> int:
    try:
        return os.open(directory, _DIR_FLAGS)
    except FileNotFoundError as exc:
        raise OutputError(f"output directory does not exist: {directory}") from exc
    except OSError as exc:
        raise os_failure(exc, "cannot open directory", directory) from exc


def open_directory(directory: Path, root: Path | None = None, *, create: bool = False) -> Directory:
    """Open `directory`; below `root` (when given) no symlink is followed and any that is met
    raises `UnsafePath`. `create` makes missing directories (durably). Without a root the path
    is opened as given (a destination a person named on the command line)."""
    directory = Path(os.path.abspath(directory))
    if root is None:
        if create:
            make_parents(directory)
        return Directory(_open_path(directory), directory)
    root = Path(os.path.abspath(root))
    try:
        relative = directory.relative_to(root)
    except ValueError:
        raise UnsafePath(f"{directory} is not inside {root}") from None
    if ".." in relative.parts:
        raise UnsafePath(f"{directory} leaves {root}")
    if create:
        make_parents(root)
    fd = _open_path(root)
    current = root
    try:
        for part in relative.parts:
            current = current / part
            fd = _step(fd, part, current, root, create)
    except BaseException:
        os.close(fd)
        raise
    return Directory(fd, directory)


def _step(fd: int, part: str, current: Path, root: Path, create: bool) -> int:
    """Open `part` below `fd` without following it; returns its descriptor, closes `fd`."""
    flags = _DIR_FLAGS | os.O_NOFOLLOW
    try:
        child = os.open(part, flags, dir_fd=fd)
    except FileNotFoundError as exc:
        if not create:
            raise OutputError(f"output directory does not exist: {current}") from exc
        try:
            os.mkdir(part, dir_fd=fd)
        except FileExistsError:
            pass
        except OSError as err:
            raise os_failure(err, "cannot create directory", current) from err
        fsync_dir(fd)
        child = _open_child(part, flags, fd, current, root)
    except OSError as exc:
        raise _refusal(exc, current, root) from exc
    os.close(fd)
    return child


def _open_child(part: str, flags: int, fd: int, current: Path, root: Path) -> int:
    try:
        return os.open(part, flags, dir_fd=fd)
    except OSError as exc:
        raise _refusal(exc, current, root) from exc


def _refusal(exc: OSError, current: Path, root: Path) -> OutputError:
    if isinstance(exc, NotADirectoryError) or exc.errno == errno.ELOOP:  # a symlink, not followed
        return UnsafePath(
            f"{current} is a symlink or not a directory; lmd writes only below {root} "
            "and never through a symlink"
        )
    return os_failure(exc, "cannot open directory", current)
