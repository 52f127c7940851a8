"""Where each part of a LiveMoments checkpoint directory lives, and the error for a bad one.

The layout is the published HF repo plus the SD3 files lmd needs (design page §2):

    <dir>/transformer/{config.json, diffusion_pytorch_model.safetensors}      RestorationNet
    <dir>/transformer_ref/{config.json, diffusion_pytorch_model.safetensors}  ReferenceNet
    <dir>/motion_encoder.pt                    torch.save(state_dict), widths read from shapes
    <dir>/vae/{config.json, diffusion_pytorch_model.safetensors}              SD3 VAE
    <dir>/prompt_embeds.safetensors            empty-prompt embeddings (or the fork's two .pt)
    <dir>/scheduler/scheduler_config.json      optional, unused (the σ schedule is hard-coded)
    <dir>/raft/raft_large_C_T_SKHT_V1-0b8c9e55.pth   optional RAFT-Sintel weights

Random-weight checkpoints (tests, benchmarks) say so three ways: a marker file, safetensors
metadata and a config flag, so no copy of one is mistaken for the model.

Modules beside this one: `read` (files into plain values), `validate` (shapes against the
architecture), `load` (networks onto a device), `digest` (identity for jobs), `write` (the
writer used by `lmd model init` and training).
"""

from __future__ import annotations

from core.api import RestoreError

TRANSFORMER_DIR = "transformer"
TRANSFORMER_REF_DIR = "transformer_ref"
VAE_DIR = "vae"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "diffusion_pytorch_model.safetensors"
MOTION_FILE = "motion_encoder.pt"
PROMPT_FILE = "prompt_embeds.safetensors"
PROMPT_PT_FILES = ("prompt_embeds.pt", "pooled_prompt_embeds.pt")
RAFT_FILE = "raft/raft_large_C_T_SKHT_V1-0b8c9e55.pth"
SCHEDULER_FILE = "scheduler/scheduler_config.json"

RANDOM_MARKER = "RANDOM_WEIGHTS.txt"
RANDOM_METADATA_KEY = "lmd.random_weights"
RANDOM_CONFIG_KEY = "_lmd_random_weights"

PROMPT_KEY = "prompt_embeds"
POOLED_KEY = "pooled_prompt_embeds"

TRANSFORMER_CLASS = "SD3TransformerFuseMotion2DModel"
"""The published RestorationNet's `_class_name` (diffusers ignores the mismatch)."""
TRANSFORMER_REF_CLASS = "SD3Transformer2DModel"
VAE_CLASS = "AutoencoderKL"


class CheckpointError(RestoreError):
    """The checkpoint directory is incomplete or does not match the architecture."""


__all__ = [
    "CONFIG_FILE",
    "MOTION_FILE",
    "POOLED_KEY",
    "PROMPT_FILE",
    "PROMPT_KEY",
    "PROMPT_PT_FILES",
    "RAFT_FILE",
    "RANDOM_CONFIG_KEY",
    "RANDOM_MARKER",
    "RANDOM_METADATA_KEY",
    "SCHEDULER_FILE",
    "TRANSFORMER_CLASS",
    "TRANSFORMER_DIR",
    "TRANSFORMER_REF_CLASS",
    "TRANSFORMER_REF_DIR",
    "VAE_CLASS",
    "VAE_DIR",
    "WEIGHTS_FILE",
    "CheckpointError",
]
