"""Replacing one file whole: written under a temporary name beside it, then renamed over it.

Checkpoints, training state and pair sets are read back by later runs (a resumed fit, the
loader, `lmd train fit` on a pair set); a run killed mid-write must leave the old file or the
whole new one, never a truncated one that loads as garbage.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def replace_file(path: Path, write: Callable[[Path], None]) -> None:
    """`write(tmp)` then rename `tmp` over `path`; the temporary file never outlives the call."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
