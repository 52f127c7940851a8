"""Writing checkpoint directories in the published layout: trained weights or random ones.

`write_checkpoint` stores networks the way `load` reads them (training code saves through it);
`write_random_checkpoint` builds random networks and stores them marked as random (tests,
benchmarks, wiring checks: `lmd model init`); `save_prompt_embeddings` adds the empty-prompt
embeddings (`lmd model embed-prompt`). Every file is written under a temporary name and renamed
into place, so an interrupted write never leaves a half-written file under a real name.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.livemoments.atomic_file import replace_file
from core.livemoments.config import Size, sizes
from core.livemoments.layout import (
    CONFIG_FILE,
    MOTION_FILE,
    POOLED_KEY,
    PROMPT_FILE,
    PROMPT_KEY,
    RANDOM_CONFIG_KEY,
    RANDOM_MARKER,
    RANDOM_METADATA_KEY,
    TRANSFORMER_CLASS,
    TRANSFORMER_DIR,
    TRANSFORMER_REF_CLASS,
    TRANSFORMER_REF_DIR,
    VAE_CLASS,
    VAE_DIR,
    WEIGHTS_FILE,
)


def _replace_into(path: Path, write: Callable[[Path], None]) -> None:
    """`replace_file` in a folder made first (a checkpoint is written folder by folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_file(path, write)


def _save_module(
    module: nn.Module,
    folder: Path,
    config: Mapping[str, Any],
    class_name: str,
    dtype: torch.dtype,
    random: bool,
) -> None:
    from safetensors.torch import save_file

    payload = {"_class_name": class_name, **({RANDOM_CONFIG_KEY: True} if random else {})}
    payload.update(config)
    _replace_into(
        folder / CONFIG_FILE, lambda p: p.write_text(json.dumps(payload, indent=2) + "\n")
    )
    state = {k: v.detach().to(dtype).contiguous() for k, v in module.state_dict().items()}
    metadata = {RANDOM_METADATA_KEY: "true"} if random else None
    _replace_into(folder / WEIGHTS_FILE, lambda p: save_file(state, str(p), metadata=metadata))


def save_transformer(
    directory: Path | str,
    module: nn.Module,
    config: Mapping[str, Any],
    *,
    restoration: bool,
    dtype: torch.dtype = torch.float32,
    random_weights: bool = False,
) -> None:
    """Store the RestorationNet (`restoration`) or the ReferenceNet with its config.json."""
    sub, class_name = (
        (TRANSFORMER_DIR, TRANSFORMER_CLASS)
        if restoration
        else (TRANSFORMER_REF_DIR, TRANSFORMER_REF_CLASS)
    )
    _save_module(module, Path(directory) / sub, config, class_name, dtype, random_weights)


def save_motion_encoder(directory: Path | str, module: nn.Module) -> None:
    """Store the motion encoder as the published `torch.save(state_dict)`, in float32."""
    state = {k: v.detach().to(torch.float32).contiguous() for k, v in module.state_dict().items()}
    _replace_into(Path(directory) / MOTION_FILE, lambda p: torch.save(state, p))


def save_vae(
    directory: Path | str, module: nn.Module, config: Mapping[str, Any], random_weights: bool
) -> None:
    """Store the VAE in float32 (the SD3 VAE overflows in float16)."""
    folder = Path(directory) / VAE_DIR
    _save_module(module, folder, config, VAE_CLASS, torch.float32, random_weights)


def write_checkpoint(
    directory: Path | str,
    *,
    transformer: nn.Module,
    transformer_ref: nn.Module,
    motion_encoder: nn.Module,
    vae: nn.Module,
    transformer_config: Mapping[str, Any],
    vae_config: Mapping[str, Any],
    dtype: torch.dtype = torch.float32,
    random_weights: bool = False,
) -> Path:
    """Store the four networks in the published layout; `load_checkpoint` reads them back.

    Floating-point tensors of the transformers are stored in `dtype`; the VAE and the motion
    encoder always in float32. With `random_weights` every part says so (config flag,
    safetensors metadata); the marker file and the prompt embeddings (`save_prompt_embeddings`)
    are separate steps. Callers that cannot hold all four networks at once use the `save_*`
    functions one by one, as `write_random_checkpoint` does.
    """
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    save_transformer(
        root, transformer, transformer_config,
        restoration=True, dtype=dtype, random_weights=random_weights,
    )
    save_transformer(
        root, transformer_ref, transformer_config,
        restoration=False, dtype=dtype, random_weights=random_weights,
    )
    save_motion_encoder(root, motion_encoder)
    save_vae(root, vae, vae_config, random_weights)
    return root


def write_random_checkpoint(
    directory: Path | str, size: Size = "tiny", seed: int = 0, dtype: torch.dtype | None = None
) -> Path:
    """Write a checkpoint with random weights in the published layout (tests, benchmarks, wiring).

    Its files say they are random: a RANDOM_WEIGHTS.txt marker, safetensors metadata and a
    config flag. `point_proj` gets small random values (not the published zero init) so the
    motion path changes the output and is exercised end to end. The networks are built and
    stored one at a time (a full-size fp32 transformer alone takes ≈8 GB).
    """
    from diffusers import AutoencoderKL

    from core.livemoments.model import build_transformer
    from core.livemoments.motion_encoder import MotionEncoder

    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    spec = sizes(size)
    dtype = dtype or (torch.float16 if size == "full" else torch.float32)
    torch.manual_seed(seed)
    main = build_transformer(spec.transformer, restoration=True)
    with torch.no_grad():
        for proc in main.attn_processors.values():
            nn.init.normal_(proc.point_proj.weight, std=0.02)
    save_transformer(
        root, main, spec.transformer, restoration=True, dtype=dtype, random_weights=True
    )
    del main
    ref = build_transformer(spec.transformer, restoration=False)
    save_transformer(
        root, ref, spec.transformer, restoration=False, dtype=dtype, random_weights=True
    )
    del ref
    save_motion_encoder(root, MotionEncoder(spec.motion))
    save_vae(root, AutoencoderKL.from_config(dict(spec.vae)), spec.vae, random_weights=True)
    generator = torch.Generator().manual_seed(seed + 1)
    prompt = 0.1 * torch.randn(
        1, spec.prompt_tokens, spec.transformer["joint_attention_dim"], generator=generator
    )
    pooled = 0.1 * torch.randn(1, spec.transformer["pooled_projection_dim"], generator=generator)
    _write_prompt(root, prompt, pooled, {RANDOM_METADATA_KEY: "true"})
    _replace_into(
        root / RANDOM_MARKER,
        lambda p: p.write_text(
            f"RANDOM WEIGHTS ({size} size, seed {seed}) written by `lmd model init`.\n"
            "This is not the LiveMoments model: it restores nothing. Use it only for tests,\n"
            "benchmarks and wiring checks.\n"
        ),
    )
    return root


def _write_prompt(
    directory: Path, prompt: torch.Tensor, pooled: torch.Tensor, metadata: dict[str, str]
) -> Path:
    from safetensors.torch import save_file

    tensors = {
        PROMPT_KEY: prompt.detach().float().cpu().contiguous(),
        POOLED_KEY: pooled.detach().float().cpu().contiguous(),
    }
    path = directory / PROMPT_FILE
    _replace_into(path, lambda p: save_file(tensors, str(p), metadata=metadata))
    return path


def save_prompt_embeddings(
    directory: Path | str, prompt: torch.Tensor, pooled: torch.Tensor
) -> Path:
    """Store SD3's empty-prompt embeddings ([1, L, D] and [1, P]) in the checkpoint directory."""
    return _write_prompt(
        Path(directory),
        prompt,
        pooled,
        {"lmd.source": "StableDiffusion3Pipeline.encode_prompt('', '', '')"},
    )
