"""A job's identity: one digest of everything that decides what the output will be.

Same digest, same output: enqueueing it again is a no-op. Paths are deliberately *not* part of
it (a moved file keeps its job); content signatures, the reselected time, the restorer, its
weights, its parameters and the pinned output (mode, location, quality: `OutputSpec`) are, so
the identity covers exactly what the worker reads from the job row. Canonical JSON (sorted
keys, no whitespace) keeps the digest stable across processes and Python versions.

The job's kind (what of the asset it restores) is part of it, so a still and a video job of one
asset never share a digest. A still's recipe leaves the kind out, as before kinds existed: the
identities of the jobs already queued stay what they were, and no upgrade re-enqueues them.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

#: bumped when the recipe changes, so old and new digests never collide (2: the pinned output
#: joined the recipe and params hold the restorer's parameters only)
IDENTITY_VERSION = 2


def _plain(value: Any) -> Any:
    """Reduce to JSON types with a stable form (floats rounded to 1e-6, tuples as lists)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"non-finite number in job identity: {value}")
        rounded = round(value, 6)
        return int(rounded) if rounded.is_integer() else rounded
    if hasattr(value, "to_dict"):
        return _plain(value.to_dict())
    return str(value)


def canonical_json(value: Any) -> str:
    return json.dumps(_plain(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def job_identity(
    signatures: Mapping[str, Mapping[str, Any]],
    t1: float | None,
    restorer: str,
    weights_digest: str,
    params: Mapping[str, Any],
    output: Mapping[str, Any] | None = None,
    kind: str = "still",
) -> str:
    """sha256 hex of the canonical inputs. `signatures` maps a role (reference, video,
    target...) to that file's signature; only `size` and `content_hash` count, because an mtime
    change without a content change (a copy, a touch) must not make new work. `output` is the
    pinned `OutputSpec.to_dict()`; `kind` is the job's kind ('still' or 'video')."""
    sigs = {
        role: {k: sig[k] for k in ("size", "content_hash") if k in sig}
        for role, sig in signatures.items()
    }
    doc = {
        "v": IDENTITY_VERSION,
        "signatures": sigs,
        "t1": None if t1 is None else round(float(t1), 6),
        "restorer": restorer,
        "weights": weights_digest,
        "params": params,
        "output": output,
    }
    if kind != "still":
        doc["kind"] = kind
    return hashlib.sha256(canonical_json(doc).encode("utf-8")).hexdigest()
