"""Kept only so that code written against the old path keeps importing during the move.

`UnreadableFile` lives in `daemon.files.errors`; import it from there.
"""

from __future__ import annotations

from daemon.files.errors import UnreadableFile

__all__ = ["UnreadableFile"]
