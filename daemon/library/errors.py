"""The one error type every reader in `daemon.library` raises.

Discovery must never crash on a hostile or broken file: readers turn every parse problem into
`UnreadableFile(reason)`, and discovery turns that into a listed reason. Fuzz tests assert that
no other exception type escapes a reader.
"""

from __future__ import annotations


class UnreadableFile(Exception):
    """A file (or a part of it) could not be read as what it claims to be."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason
