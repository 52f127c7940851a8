"""The identity of a checkpoint directory, for job identities and provenance.

`weights_digest(dir)` returns ``"blake3-checkpoint:<hex>"``: BLAKE3 (through `core.hashing`, the
one hashing module) over every weight and config file's relative name and size, each
safetensors header (tensor names, shapes, dtypes, metadata, read with `safetensors.safe_open`)
and the file contents: whole up to 64 MiB, else 16 evenly spaced 64 KiB windows. The scanner
computes it on every scan, so it must take well under a second even for the 17 GB published
checkpoint; a retrained checkpoint changes its windows. Modification times are deliberately left
out, so copying a checkpoint to another machine keeps its identity.

Earlier versions wrote a bare SHA-256 hex string with the same sampling; a checkpoint digested
by them gets the new, named digest, so its jobs get new identities on the next scan.
"""

from __future__ import annotations

import json
from pathlib import Path

from core import hashing
from core.livemoments.layout import RANDOM_MARKER
from core.livemoments.read import read_safetensors_header

ALGORITHM = "blake3-checkpoint"
"""The name the digest carries: BLAKE3 over the recipe above (not a plain file digest)."""

_RECIPE = b"lmd-livemoments-v2\0"
_SUFFIXES = frozenset({".safetensors", ".pt", ".pth", ".json", ".txt"})
_WHOLE_LIMIT = 1 << 26
_WINDOWS = 16
_WINDOW = 1 << 16


def checkpoint_files(directory: Path | str) -> list[Path]:
    """The files that make a checkpoint what it is, sorted (the random-weights marker is
    left out: the same weights are the same checkpoint, and its metadata flag stays in)."""
    root = Path(directory)
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and p.suffix in _SUFFIXES and p.name != RANDOM_MARKER
    )


def weights_digest(directory: Path | str) -> str:
    """``"blake3-checkpoint:<hex>"`` identifying the checkpoint in `directory` (see the module
    docstring). A damaged safetensors file is a `CheckpointError`, an unreadable one `OSError`."""
    root = Path(directory)
    h = hashing.hasher()
    h.update(_RECIPE)
    for path in checkpoint_files(root):
        rel = path.relative_to(root).as_posix()
        h.update(f"{rel}\0{path.stat().st_size}\0".encode("utf-8", "surrogateescape"))
        if path.suffix == ".safetensors":
            header = read_safetensors_header(path)
            summary = [header.shapes, header.dtypes, header.metadata]
            h.update(json.dumps(summary, sort_keys=True).encode())
        hashing.update_from_file(
            h, path, whole_limit=_WHOLE_LIMIT, windows=_WINDOWS, window=_WINDOW
        )
    return hashing.tagged(h, ALGORITHM)
