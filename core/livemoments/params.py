"""The livemoments restorer's parameters: what `-p KEY=VALUE` and `[restorer] params` may say.

One schema serves three callers: settings loading and `lmd doctor` ask `param_problems(params)`
(through `core.registry.validate_params`) so a bad value is reported at start instead of failing
every job; the restorer normalises each request with `checked_options` (same rules, raising); and
`tile_problems` checks a tile against a checkpoint's own configs (the transformer's
`pos_embed_max_size` caps the tile; the published model takes up to 3072 px, the tiny test model
512), which the restorer does once the models are loaded and `lmd model check` reports.

A tile the model cannot take is refused, naming the largest one it can, rather than clamped:
parameters are part of each job's identity, so a job is made with the tile it records or not at
all. This module imports neither torch nor diffusers (settings and doctor use it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from core.api import RestoreError
from core.livemoments.config import TILE_MULTIPLE

FLOW_CHOICES = ("auto", "raft", "dis")

DEFAULTS: dict[str, Any] = {
    "tile": 1024,
    "overlap": 64,
    "tile_batch": 0,
    "seed": None,
    "flow": "auto",
    "color_fix": True,
    "deterministic": False,
}
"""Per-request parameters and the restorer's defaults for them (`tile_batch` 0: automatic)."""

REQUEST_PARAMS = (*DEFAULTS, "checkpoint")
"""Every key a request may carry: the defaults above, and `checkpoint` (another directory)."""

MAX_TILE_BATCH = 64
SEED_LIMIT = 2**63
"""Seeds are stored in job rows (64-bit integers)."""

_CONSTRUCTOR_ONLY = ("device", "dtype", "low_memory", "compile", "idle_unload_seconds")


def _whole(value: Any) -> int | None:
    """`value` as an int when it is a whole, finite number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        return None
    return int(value)


def param_problems(params: Mapping[str, Any]) -> list[str]:
    """Every problem with `params` for the livemoments restorer, one sentence each ([] if none).

    Checks names (a misspelt key would otherwise be ignored), types (TOML and `--param` give
    words, floats and booleans), finiteness and ranges: tile a positive multiple of 16, overlap
    in [0, tile), tile_batch in [0, 64], seed within 64 bits, flow one of auto/raft/dis,
    color_fix and deterministic true/false, checkpoint a non-empty path.
    """
    problems: list[str] = []
    for key in params:
        if key in _CONSTRUCTOR_ONLY:
            problems.append(
                f"livemoments: {key} is not a per-job parameter; set [restorer] {key} instead"
            )
        elif key not in REQUEST_PARAMS:
            problems.append(
                f"livemoments: unknown parameter {key!r}; known: {', '.join(REQUEST_PARAMS)}"
            )
    merged = {**DEFAULTS, **{k: v for k, v in params.items() if k in REQUEST_PARAMS}}

    numbers: dict[str, int] = {}
    for name in ("tile", "overlap", "tile_batch", "seed"):
        value = merged[name]
        if value is None and name == "seed":
            continue
        number = _whole(value)
        if number is None:
            problems.append(f"livemoments: parameter {name} must be an integer, got {value!r}")
        else:
            numbers[name] = number
    tile, overlap = numbers.get("tile"), numbers.get("overlap")
    if tile is not None and (tile < TILE_MULTIPLE or tile % TILE_MULTIPLE):
        problems.append(
            f"livemoments: tile must be a positive multiple of {TILE_MULTIPLE}, got {tile}"
        )
    elif tile is not None and overlap is not None and not 0 <= overlap < tile:
        problems.append(f"livemoments: need 0 ≤ overlap < tile, got {overlap} and {tile}")
    batch = numbers.get("tile_batch")
    if batch is not None and not 0 <= batch <= MAX_TILE_BATCH:
        problems.append(
            f"livemoments: tile_batch must be 0 (automatic) to {MAX_TILE_BATCH}, got {batch}"
        )
    seed = numbers.get("seed")
    if seed is not None and not -SEED_LIMIT <= seed < SEED_LIMIT:
        problems.append(f"livemoments: seed must fit in 64 bits, got {seed}")
    for name in ("color_fix", "deterministic"):
        if not isinstance(merged[name], bool):
            problems.append(
                f"livemoments: parameter {name} must be true or false, got {merged[name]!r}"
            )
    if merged["flow"] not in FLOW_CHOICES:
        problems.append(
            f"livemoments: parameter flow must be one of {', '.join(FLOW_CHOICES)}, "
            f"got {merged['flow']!r}"
        )
    if "checkpoint" in params:
        path = params["checkpoint"]
        if not isinstance(path, str) or not path.strip():
            problems.append(
                f"livemoments: parameter checkpoint must be a directory path, got {path!r}"
            )
    return problems


def checked_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """`options` (defaults merged with a request's parameters) with whole numbers as ints; the
    first problem `param_problems` finds is a RestoreError."""
    problems = param_problems(options)
    if problems:
        raise RestoreError("; ".join(problems))
    out = dict(options)
    for name in ("tile", "overlap", "tile_batch", "seed"):
        if out.get(name) is not None:
            out[name] = int(out[name])
    return out


def max_tile(transformer_config: Mapping[str, Any], vae_config: Mapping[str, Any]) -> int | None:
    """The largest tile (px) a checkpoint takes: diffusers' PatchEmbed refuses more than
    `pos_embed_max_size` patches per side, and a patch is `patch_size` latents of the VAE's
    2^(levels−1) pixels. None when the transformer sets no maximum."""
    limit = transformer_config.get("pos_embed_max_size")
    if not limit:
        return None
    patch = int(transformer_config.get("patch_size", 2))
    vae_factor = 2 ** (len(vae_config.get("block_out_channels", [0] * 4)) - 1)
    return int(limit) * patch * vae_factor


def tile_problems(
    tile: int, transformer_config: Mapping[str, Any], vae_config: Mapping[str, Any]
) -> list[str]:
    """Why this checkpoint cannot take `tile`, naming the largest tile it can ([] if it can)."""
    largest = max_tile(transformer_config, vae_config)
    if largest is None or tile <= largest:
        return []
    return [
        f"livemoments: tile {tile} is larger than this checkpoint takes "
        f"(pos_embed_max_size {transformer_config.get('pos_embed_max_size')}); "
        f"the largest tile it can take is {largest} (set tile = {largest} or smaller)"
    ]
