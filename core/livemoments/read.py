"""Reading a checkpoint's files into plain values; anything unreadable is a named CheckpointError.

Validation and loading both start here, so a damaged file gives the same message whichever
command met it. Safetensors headers are read with `safetensors.safe_open`, which also refuses a
file whose size does not match what its header describes (an interrupted copy keeps a valid
header, so the header alone would look complete).

Importing this module does not import torch: the scanner digests a checkpoint (`digest`) on
every scan and must not pay for it. Only the functions that return tensors import it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.livemoments.layout import (
    POOLED_KEY,
    PROMPT_FILE,
    PROMPT_KEY,
    PROMPT_PT_FILES,
    CheckpointError,
)

if TYPE_CHECKING:
    import torch


def read_config(path: Path) -> dict[str, Any]:
    """A diffusers config.json without its `_`-prefixed bookkeeping keys."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable config ({exc})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: not a JSON object")
    return {k: v for k, v in data.items() if not k.startswith("_")}


@dataclass(frozen=True, slots=True)
class SafetensorsHeader:
    """What a safetensors header says, without the tensor data."""

    shapes: dict[str, tuple[int, ...]]
    dtypes: dict[str, str]
    metadata: dict[str, str]


def read_safetensors_header(path: Path) -> SafetensorsHeader:
    """Tensor names, shapes, dtypes and metadata of a safetensors file (data not read)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as fh:  # headers only: no torch needed
            shapes, dtypes = {}, {}
            for key in fh.keys():  # noqa: SIM118 - safe_open is not a mapping
                tensor = fh.get_slice(key)
                shapes[key] = tuple(int(s) for s in tensor.get_shape())
                dtypes[key] = str(tensor.get_dtype())
            metadata = dict(fh.metadata() or {})
    except OSError as exc:
        raise CheckpointError(f"{path}: unreadable ({exc})") from None
    except Exception as exc:  # SafetensorError (a damaged or cut file) derives from Exception
        size = path.stat().st_size if path.exists() else 0
        raise CheckpointError(
            f"{path}: not a complete safetensors file ({size} bytes; {exc}); "
            "an interrupted copy or download?"
        ) from None
    return SafetensorsHeader(shapes, dtypes, metadata)


def load_motion_state(path: Path) -> dict[str, torch.Tensor]:
    """The motion encoder's state dict, memory-mapped (a DataParallel `module.` prefix dropped)."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # unpickling raises many types; all mean "not this file"
        raise CheckpointError(f"{path}: cannot read the motion encoder ({exc})") from None
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise CheckpointError(f"{path}: expected a state dict of tensors")
    return {str(k).removeprefix("module."): v for k, v in state.items()}


def load_tensor_pt(path: Path) -> torch.Tensor:
    """One tensor saved with `torch.save` (the fork's prompt files), or a CheckpointError."""
    import torch

    try:
        value = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling raises many types; all mean "not this file"
        raise CheckpointError(f"{path}: cannot read ({exc})") from None
    if not isinstance(value, torch.Tensor):
        raise CheckpointError(f"{path}: expected one tensor, found {type(value).__name__}")
    return value


def load_prompt(directory: Path) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Empty-prompt embeddings as [1, L, D] and [1, P], from either accepted layout, and which."""
    st = directory / PROMPT_FILE
    if st.is_file():
        from safetensors.torch import load_file

        try:
            tensors = load_file(str(st))
        except Exception as exc:  # safetensors raises its own error type for a bad header
            raise CheckpointError(f"{st}: cannot read the prompt embeddings ({exc})") from None
        if PROMPT_KEY not in tensors or POOLED_KEY not in tensors:
            raise CheckpointError(f"{st}: needs tensors {PROMPT_KEY!r} and {POOLED_KEY!r}")
        prompt, pooled, source = tensors[PROMPT_KEY], tensors[POOLED_KEY], PROMPT_FILE
    elif all((directory / name).is_file() for name in PROMPT_PT_FILES):
        prompt, pooled = (load_tensor_pt(directory / name) for name in PROMPT_PT_FILES)
        source = " + ".join(PROMPT_PT_FILES)
    else:
        raise CheckpointError(
            f"{directory}: no empty-prompt embeddings ({PROMPT_FILE} or "
            f"{' + '.join(PROMPT_PT_FILES)}); create them once with `lmd model embed-prompt`"
        )
    if prompt.dim() == 2:
        prompt = prompt[None]
    if pooled.dim() == 1:
        pooled = pooled[None]
    if prompt.dim() != 3 or pooled.dim() != 2 or prompt.shape[0] != 1 or pooled.shape[0] != 1:
        raise CheckpointError(
            f"{directory}: prompt embeddings must be [1, L, D] and [1, P], got "
            f"{list(prompt.shape)} and {list(pooled.shape)}"
        )
    return prompt, pooled, source
