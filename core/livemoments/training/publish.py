"""Writing a trained model as a checkpoint in the published layout (what `lmd model check` takes).

The networks go through `core.livemoments.write.write_checkpoint` (LoRA adapters folded into
their base weights first, so inference needs no peft), with the transformers in the initial
checkpoint's dtype. Only tensors training can change are taken from the trained networks: every
other transformer tensor is the initial file's own (a frozen weight stays bit-identical even when
training held it in another precision), and what training does not touch at all is copied from
the initial checkpoint byte for byte: the VAE, the empty-prompt embeddings, the RAFT weights (so
inference computes the motion input with the flow training used), the scheduler config, and the
random-weights marker, since a model fine-tuned from random weights is still not LiveMoments.
`lmd_training.json` says how the model was made.

The checkpoint is assembled in a temporary folder beside the destination and renamed into place,
so an interrupted write never leaves a half-written checkpoint under the real name.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import torch

from core.livemoments.layout import (
    CONFIG_FILE,
    PROMPT_FILE,
    PROMPT_PT_FILES,
    RAFT_FILE,
    RANDOM_MARKER,
    SCHEDULER_FILE,
    TRANSFORMER_DIR,
    TRANSFORMER_REF_DIR,
    VAE_DIR,
    WEIGHTS_FILE,
)
from core.livemoments.load import LiveMomentsModels
from core.livemoments.read import read_safetensors_header
from core.livemoments.training.trainable import StateDictView, lora_deltas
from core.livemoments.validate import CheckpointReport
from core.livemoments.write import write_checkpoint

PROVENANCE_FILE = "lmd_training.json"

_SAFETENSORS_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def stored_dtype(init: Path) -> torch.dtype:
    """The floating dtype most of the initial RestorationNet's tensors are stored in."""
    header = read_safetensors_header(init / TRANSFORMER_DIR / WEIGHTS_FILE)
    counts = Counter(d for d in header.dtypes.values() if d in _SAFETENSORS_DTYPES)
    return _SAFETENSORS_DTYPES[counts.most_common(1)[0][0]] if counts else torch.float32


def _copy_unchanged(init: Path, dest: Path) -> None:
    names = [
        f"{VAE_DIR}/{CONFIG_FILE}", f"{VAE_DIR}/{WEIGHTS_FILE}",
        PROMPT_FILE, *PROMPT_PT_FILES, RAFT_FILE, SCHEDULER_FILE, RANDOM_MARKER,
    ]
    for name in names:
        source = init / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def _published(module: torch.nn.Module, init_folder: Path, dtype: torch.dtype) -> StateDictView:
    """The initial file's tensors with the trained ones put in, cast to `dtype`: parameters
    trained whole as they are now, LoRA-adapted weights as the file's own weight plus the
    adapter's update (in float32: a base held in bf16 for training loses nothing)."""
    from safetensors.torch import load_file

    state = load_file(str(init_folder / WEIGHTS_FILE))
    for name, param in module.named_parameters():
        if param.requires_grad and ".lora_" not in name:
            state[name] = param.detach().to("cpu", dtype)
    for key, delta in lora_deltas(module).items():
        state[key] = (state[key].float() + delta.cpu()).to(dtype)
    return StateDictView(state)


def publish_checkpoint(
    destination: Path,
    models: LiveMomentsModels,
    init: CheckpointReport,
    provenance: dict[str, Any],
) -> Path:
    """Write `models` (trained) as a checkpoint at `destination`, replacing one already there."""
    destination = Path(destination)
    tmp = destination.with_name(f".{destination.name}.tmp")
    old = destination.with_name(f".{destination.name}.old")
    for leftover in (tmp, old):
        if leftover.exists():
            shutil.rmtree(leftover)
    dtype = stored_dtype(init.path)
    try:
        write_checkpoint(
            tmp,
            transformer=_published(models.transformer, init.path / TRANSFORMER_DIR, dtype),
            transformer_ref=_published(
                models.transformer_ref, init.path / TRANSFORMER_REF_DIR, dtype
            ),
            motion_encoder=models.motion_encoder,
            vae=models.vae,
            transformer_config=init.transformer_config,
            vae_config=init.vae_config,
            dtype=dtype,
            random_weights=init.random_weights,
        )
        _copy_unchanged(init.path, tmp)
        (tmp / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2, sort_keys=True) + "\n")
        if destination.exists():
            os.replace(destination, old)
        os.replace(tmp, destination)
    finally:
        for leftover in (tmp, old):
            if leftover.exists():
                shutil.rmtree(leftover)
    return destination
