"""Opening a library file for reading: a regular file, never through a link out of the library.

Readers open files by the path the walk listed, and anything on that path can be swapped
between listing and opening: the file for a link to `/etc/...` or to a FIFO, a folder above it
for a link out of the library. Every reader (`BoundedFile`, content digests, Pillow, PyAV)
opens through `open_regular`, which checks the file it actually opened rather than the name:

- `O_RDONLY | O_NONBLOCK | O_CLOEXEC`: a FIFO or device swapped in cannot block the open, and
  no child process inherits the descriptor; `fstat` of what was opened must be a regular file;
- inside `confined_to(*roots)` (discovery confines its reads to the library, the worker to the
  library and the backup directory), the opened file's path as the kernel resolved it
  (`/proc/self/fd/N`) must lie under one of the roots: a link swapped in
  for the file or for any folder above it, leading out of the library, is refused, and the
  check cannot race because it looks at the open file, not at a second lookup of the name.
  Links that stay inside the library (the walk lists them) are followed. Without `/proc`, the
  resolved name is checked and must be the very file that was opened (same device and inode);
- `identity` (device, inode), when the caller has the listing's, must match the opened file.

Outside any confinement (the CLI restoring files a person named) links are followed as usual;
the regular-file check still holds. Refusals are `UnreadableFile` with the reason.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TypeVar

from daemon.files.errors import UnreadableFile

READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
#: (st_dev, st_ino) of a file as a listing saw it
FileIdentity = tuple[int, int]
T = TypeVar("T")

_roots: ContextVar[tuple[str, ...] | None] = ContextVar("lmd_confined_roots", default=None)


@contextmanager
def confined_to(*roots: Path | str) -> Iterator[tuple[str, ...]]:
    """Within the block, `open_regular` refuses any file that does not lie under one of
    `roots` (each resolved once, here): discovery gives the library; the worker gives the
    library and the backup directory, where a redo reads a replaced still's original. Yields
    the resolved roots."""
    if not roots:
        raise ValueError("confined_to needs at least one root")
    real = tuple(os.path.realpath(root) for root in roots)
    token = _roots.set(real)
    try:
        yield real
    finally:
        _roots.reset(token)


def confined_iter(root: Path | str, items: Iterator[T]) -> Iterator[T]:
    """`items` with each step run inside `confined_to(root)`, the caller's code between steps
    outside it (a generator cannot hold a context variable across its `yield`s)."""
    while True:
        with confined_to(root):
            try:
                item = next(items)
            except StopIteration:
                return
        yield item


def confined_roots() -> tuple[str, ...] | None:
    """The resolved roots reads are confined to here, if any."""
    return _roots.get()


def open_regular(path: Path | str, *, identity: FileIdentity | None = None) -> io.FileIO:
    """`path` opened for unbuffered binary reading, checked as the module docstring says."""
    try:
        fd = os.open(path, READ_FLAGS)
    except OSError as exc:
        raise UnreadableFile(f"cannot open: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnreadableFile("not a regular file (was it swapped since it was listed?)")
        if identity is not None and (st.st_dev, st.st_ino) != identity:
            raise UnreadableFile("another file is at this path since it was listed")
        roots = _roots.get()
        if roots is not None:
            _check_inside(fd, st, path, roots)
        return io.FileIO(fd, "rb", closefd=True)
    except BaseException:
        os.close(fd)
        raise


def _check_inside(
    fd: int, st: os.stat_result, path: Path | str, roots: tuple[str, ...]
) -> None:
    try:
        where = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:  # no /proc: resolve the name, and make sure it names the file we hold
        where = os.path.realpath(path)
        try:
            again = os.stat(where)
        except OSError:
            again = None
        if again is None or (again.st_dev, again.st_ino) != (st.st_dev, st.st_ino):
            raise UnreadableFile("changed while it was being opened") from None
    if not any(where == root or where.startswith(root.rstrip("/") + "/") for root in roots):
        raise UnreadableFile(
            "leads out of the library (a symbolic link on its path, swapped in since it was "
            "listed?); not read"
        )
