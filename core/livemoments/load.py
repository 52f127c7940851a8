"""Loading a validated checkpoint onto a device: the four networks and the prompt embeddings.

Networks are built on the meta device and the file's tensors assigned into them, cast tensor by
tensor on the way, so an fp32 file never sits whole in memory twice and nothing is initialised
only to be overwritten. Loading is strict: validation runs first, and after assignment no
tensor may be left uninitialised.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from core.livemoments.digest import weights_digest
from core.livemoments.layout import (
    MOTION_FILE,
    TRANSFORMER_DIR,
    TRANSFORMER_REF_DIR,
    VAE_DIR,
    WEIGHTS_FILE,
    CheckpointError,
)
from core.livemoments.read import load_motion_state, load_prompt
from core.livemoments.validate import compare_shapes, expected_shapes, named, validate_checkpoint


@dataclass(slots=True)
class LiveMomentsModels:
    """The loaded networks and tensors, ready for the pipeline."""

    transformer: nn.Module
    transformer_ref: nn.Module
    motion_encoder: nn.Module
    vae: nn.Module
    prompt_embeds: torch.Tensor
    pooled_prompt_embeds: torch.Tensor
    raft_weights: Path | None
    random_weights: bool
    digest: str
    device: torch.device
    dtype: torch.dtype
    vae_dtype: torch.dtype


def strict_assign(
    module: nn.Module,
    state: Mapping[str, torch.Tensor],
    what: str,
    device: torch.device,
    dtype: torch.dtype,
) -> nn.Module:
    """Assign `state` into a (meta) module: exact names and shapes, every tensor set, frozen."""
    errors = compare_shapes(
        what, expected_shapes(module), {k: tuple(v.shape) for k, v in state.items()}
    )
    if errors:
        raise CheckpointError("; ".join(errors))
    converted = {
        k: v.to(device=device, dtype=dtype if v.is_floating_point() else v.dtype)
        for k, v in state.items()
    }
    module.load_state_dict(converted, strict=True, assign=True)
    module.to(device)
    leftovers = [n for n, t in [*module.named_parameters(), *module.named_buffers()] if t.is_meta]
    if leftovers:
        raise CheckpointError(f"{what}: tensors not initialised by the file: {named(leftovers)}")
    module.requires_grad_(False)
    return module.eval()


def read_safetensors(
    path: Path, device: torch.device, dtype: torch.dtype
) -> dict[str, torch.Tensor]:
    """Tensor by tensor, cast on the way, so an fp32 file never sits whole in memory twice."""
    from safetensors import safe_open

    out: dict[str, torch.Tensor] = {}
    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            for key in fh.keys():  # noqa: SIM118 - safe_open is not a mapping
                t = fh.get_tensor(key)
                out[key] = t.to(device=device, dtype=dtype if t.is_floating_point() else t.dtype)
    except torch.OutOfMemoryError:
        raise  # the restorer reports it as OutOfDeviceMemory
    except Exception as exc:  # SafetensorError (a damaged file) derives from Exception only
        raise CheckpointError(f"{path}: cannot read ({exc})") from None
    return out


def load_checkpoint(
    directory: Path | str,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    vae_dtype: torch.dtype | None = None,
) -> LiveMomentsModels:
    """Validate, then strictly load every network onto `device` in `dtype`.

    The VAE runs in `vae_dtype` (default: float32 unless `dtype` is bfloat16, because the SD3
    VAE overflows in float16, hence its `force_upcast`).
    """
    from diffusers import AutoencoderKL

    from core.livemoments.model import build_transformer
    from core.livemoments.motion_encoder import MotionEncoder

    report = validate_checkpoint(directory)
    if not report.ok:
        raise CheckpointError("invalid LiveMoments checkpoint: " + "; ".join(report.errors))
    root = report.path
    device = torch.device(device)
    if vae_dtype is None:
        vae_dtype = torch.bfloat16 if dtype == torch.bfloat16 else torch.float32
    cfg = report.transformer_config
    nets = []
    for sub, restoration in ((TRANSFORMER_DIR, True), (TRANSFORMER_REF_DIR, False)):
        with torch.device("meta"):
            net = build_transformer(cfg, restoration=restoration)
        state = read_safetensors(root / sub / WEIGHTS_FILE, device, dtype)
        nets.append(strict_assign(net, state, f"{sub}/{WEIGHTS_FILE}", device, dtype))
        del state
    if report.motion_config is None:  # validation sets it whenever it passes
        raise CheckpointError(f"{root}: the motion encoder's widths could not be read")
    with torch.device("meta"):
        motion = MotionEncoder(report.motion_config)
    motion = strict_assign(
        motion, load_motion_state(root / MOTION_FILE), MOTION_FILE, device, dtype
    )
    with torch.device("meta"):
        vae = AutoencoderKL.from_config(dict(report.vae_config))
    vae = strict_assign(
        vae,
        read_safetensors(root / VAE_DIR / WEIGHTS_FILE, device, vae_dtype),
        f"{VAE_DIR}/{WEIGHTS_FILE}",
        device,
        vae_dtype,
    )
    prompt, pooled, _ = load_prompt(root)
    return LiveMomentsModels(
        transformer=nets[0],
        transformer_ref=nets[1],
        motion_encoder=motion,
        vae=vae,
        prompt_embeds=prompt.to(device, dtype),
        pooled_prompt_embeds=pooled.to(device, dtype),
        raft_weights=report.raft_weights,
        random_weights=report.random_weights,
        digest=weights_digest(root),
        device=device,
        dtype=dtype,
        vae_dtype=vae_dtype,
    )
