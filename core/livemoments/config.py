"""Architecture sizes of the LiveMoments networks, published ("full") and tiny (for tests).

The published checkpoint is SD3-medium sized (§3 of the design page). The tiny sizes keep every
structural constraint of the full model (16 latent channels, an 8× VAE, patch 2, a motion encoder
with four stride-2 convolutions so a T-px tile gives (T/16)² tokens, two embeddings per motion
block) so that the geometry under test is the real one, while a forward pass takes milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Size = Literal["tiny", "full"]

TILE_MULTIPLE = 16
"""Tiles must be whole latent patches: 8× VAE × patch 2 (and the motion encoder's /16)."""

SD3_MEDIUM_TRANSFORMER: dict[str, Any] = {
    "sample_size": 128,
    "patch_size": 2,
    "in_channels": 16,
    "num_layers": 24,
    "attention_head_dim": 64,
    "num_attention_heads": 24,
    "joint_attention_dim": 4096,
    "caption_projection_dim": 1536,
    "pooled_projection_dim": 2048,
    "out_channels": 16,
    "pos_embed_max_size": 192,
}

TINY_TRANSFORMER: dict[str, Any] = {
    "sample_size": 32,
    "patch_size": 2,
    "in_channels": 16,
    "num_layers": 4,
    "attention_head_dim": 8,
    "num_attention_heads": 2,
    "joint_attention_dim": 32,
    "caption_projection_dim": 16,
    "pooled_projection_dim": 32,
    "out_channels": 16,
    "pos_embed_max_size": 32,
}

SD3_VAE: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "act_fn": "silu",
    "latent_channels": 16,
    "norm_num_groups": 32,
    "sample_size": 1024,
    "scaling_factor": 1.5305,
    "shift_factor": 0.0609,
    "use_quant_conv": False,
    "use_post_quant_conv": False,
    "force_upcast": True,
}

TINY_VAE: dict[str, Any] = {
    **SD3_VAE,
    "block_out_channels": [4, 4, 4, 4],
    "layers_per_block": 1,
    "norm_num_groups": 2,
    "sample_size": 64,
    "force_upcast": False,
}


@dataclass(frozen=True, slots=True)
class MotionEncoderConfig:
    """Channel widths of the motion encoder: four stride-2 convs, then 1×1 pointwise blocks.

    The published encoder is (512, 1024, 1536, 1536) with 11 pointwise blocks: 12 blocks, each
    output used twice, gives the 24 embeddings of the 24 transformer blocks.
    """

    in_channels: int = 2
    hidden: tuple[int, int, int, int] = (512, 1024, 1536, 1536)
    n_pointwise: int = 11

    @property
    def embed_dim(self) -> int:
        return self.hidden[-1]

    @property
    def num_embeddings(self) -> int:
        return 2 * (1 + self.n_pointwise)

    def to_json(self) -> dict[str, Any]:
        return {
            "in_channels": self.in_channels,
            "hidden": list(self.hidden),
            "n_pointwise": self.n_pointwise,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MotionEncoderConfig:
        hidden = tuple(int(c) for c in data["hidden"])
        if len(hidden) != 4:
            raise ValueError(f"motion encoder 'hidden' needs 4 widths, got {hidden}")
        return cls(
            in_channels=int(data.get("in_channels", 2)),
            hidden=hidden,  # type: ignore[arg-type]
            n_pointwise=int(data["n_pointwise"]),
        )


FULL_MOTION = MotionEncoderConfig()
TINY_MOTION = MotionEncoderConfig(hidden=(4, 8, 16, 16), n_pointwise=1)

PROMPT_TOKENS = {"full": 333, "tiny": 5}
"""Text length of the precomputed empty-prompt embeddings: 77 CLIP + 256 T5 tokens for SD3."""


@dataclass(frozen=True, slots=True)
class ModelSizes:
    """Everything needed to build the four networks of one size."""

    transformer: dict[str, Any]
    vae: dict[str, Any]
    motion: MotionEncoderConfig
    prompt_tokens: int


def sizes(size: Size) -> ModelSizes:
    if size == "full":
        return ModelSizes(dict(SD3_MEDIUM_TRANSFORMER), dict(SD3_VAE), FULL_MOTION, 333)
    if size == "tiny":
        return ModelSizes(dict(TINY_TRANSFORMER), dict(TINY_VAE), TINY_MOTION, 5)
    raise ValueError(f"unknown model size {size!r} (expected 'tiny' or 'full')")
