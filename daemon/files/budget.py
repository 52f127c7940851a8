"""The per-file reading budget: CPU time, structures visited and bytes read, per reader call.

Every reader entry point (`read_still_meta`, `read_mov_info`, `read_aae`, `read_motion`, the
EXIF and XMP readers) runs `within_budget`: the first one entered opens a `ReadBudget` for the
call, and readers it calls (a Motion Photo's embedded movie, its XMP) spend from the same one.
The parsers underneath charge it as they go, `visit` for every box, item, extent, segment,
IFD entry or directory node and `charge` for every read, so a file whose counts and sizes each
pass their own cap (`daemon.files.limits`) still cannot multiply them into minutes or
gigabytes: the budget refuses it with an `UnreadableFile` that says which limit and why.

Parsers called outside any reader call (the writers re-reading a file lmd made) are not
counted; their per-structure caps still hold. The budget lives in a context variable, so
threads (the scanner's pool) and asyncio tasks each have their own.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import ParamSpec, TypeVar

from daemon.files import limits
from daemon.files.errors import UnreadableFile

P = ParamSpec("P")
R = TypeVar("R")


class BudgetExceeded(UnreadableFile):
    """A file refused because reading it would cost more than a real file ever does."""


class ReadBudget:
    """What one reader call may still spend on one file."""

    __slots__ = ("_since_clock", "bytes_read", "cpu_deadline", "cpu_seconds", "max_bytes",
                 "max_structures", "structures")

    def __init__(
        self,
        *,
        cpu_seconds: float = limits.FILE_CPU_SECONDS,
        max_structures: int = limits.FILE_STRUCTURES,
        max_bytes: int = limits.FILE_READ_BYTES,
    ) -> None:
        self.cpu_seconds = cpu_seconds
        self.cpu_deadline = time.thread_time() + cpu_seconds
        self.max_structures = max_structures
        self.max_bytes = max_bytes
        self.structures = 0
        self.bytes_read = 0
        self._since_clock = 0

    def visit(self, what: str, n: int = 1) -> None:
        """Count `n` structures of kind `what`; refuse past the structure or time budget."""
        self.structures += n
        if self.structures > self.max_structures:
            raise BudgetExceeded(
                f"more than {self.max_structures} structures to read "
                f"(stopped at {what}); real files have a few hundred"
            )
        self._since_clock += n
        if self._since_clock >= limits.CHECK_CLOCK_EVERY:
            self._since_clock = 0
            self.check_time(what)

    def charge(self, nbytes: int) -> None:
        """Count `nbytes` about to be read; refuse past the byte or time budget."""
        self.bytes_read += nbytes
        if self.bytes_read > self.max_bytes:
            raise BudgetExceeded(
                f"more than {self.max_bytes:,} bytes to read from this file; real metadata "
                "is a few KB to a few MB"
            )
        self.check_time("a read")

    def check_time(self, what: str) -> None:
        if time.thread_time() > self.cpu_deadline:
            raise BudgetExceeded(
                f"reading took more than {self.cpu_seconds:g} s of CPU (at {what}); "
                "real files take milliseconds"
            )


_current: ContextVar[ReadBudget | None] = ContextVar("lmd_read_budget", default=None)


def current() -> ReadBudget | None:
    """The budget of the reader call in progress in this context, if any."""
    return _current.get()


@contextmanager
def file_budget(budget: ReadBudget | None = None) -> Iterator[ReadBudget]:
    """Spend from the budget already open in this context, else from `budget` (a fresh
    `ReadBudget` by default) until the block ends."""
    active = _current.get()
    if active is not None:
        yield active
        return
    opened = budget if budget is not None else ReadBudget()
    token = _current.set(opened)
    try:
        yield opened
    finally:
        _current.reset(token)


def within_budget(fn: Callable[P, R]) -> Callable[P, R]:
    """Run a reader entry point inside `file_budget()`."""

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        with file_budget():
            return fn(*args, **kwargs)

    return run


def visit(what: str, n: int = 1) -> None:
    """Count structures against the open budget (nothing when no reader call is open)."""
    active = _current.get()
    if active is not None:
        active.visit(what, n)


def charge(nbytes: int) -> None:
    """Count bytes read against the open budget (nothing when no reader call is open)."""
    active = _current.get()
    if active is not None:
        active.charge(nbytes)
