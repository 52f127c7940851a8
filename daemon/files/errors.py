"""The one error type every file reader in lmd raises.

A photo library is untrusted input: readers (`daemon.files` and `daemon.library`) turn every
parse problem into `UnreadableFile(reason)`, and discovery turns that into a listed reason, never
a crash. Fuzz tests assert that no other exception type escapes a reader.
"""

from __future__ import annotations


class UnreadableFile(Exception):
    """A file (or a part of it) could not be read as what it claims to be."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason
