"""The LiveMoments motion encoder: optical flow → one key-space embedding per transformer block.

Layer for layer the published `MotionEncoder` (its state dict loads unchanged: `blocks.0.{0,2,4,6}`
are the stride-2 convolutions, `blocks.{i}.0` the 1×1 ones), with the widths configurable so that
tests can use a tiny one. Each block's output is flattened to tokens and used by two consecutive
transformer blocks, as in the official code.
"""

from __future__ import annotations

import torch
from torch import nn

from core.livemoments.config import MotionEncoderConfig


class MotionEncoder(nn.Module):
    """Raw flow in pixels [B, 2, H, W] → list of 2·(1+n_pointwise) tensors [B, H/16·W/16, C]."""

    def __init__(self, config: MotionEncoderConfig | None = None) -> None:
        super().__init__()
        self.config = config or MotionEncoderConfig()
        c = self.config
        layers: list[nn.Module] = []
        current = c.in_channels
        for width in c.hidden:
            layers += [nn.Conv2d(current, width, kernel_size=3, stride=2, padding=1), nn.SiLU()]
            current = width
        self.blocks = nn.ModuleList([nn.Sequential(*layers)])
        for _ in range(c.n_pointwise):
            self.blocks.append(nn.Sequential(nn.Conv2d(current, current, kernel_size=1), nn.SiLU()))

    def forward(self, flow: torch.Tensor) -> list[torch.Tensor]:
        embeddings: list[torch.Tensor] = []
        x = flow
        for block in self.blocks:
            x = block(x)
            tokens = x.flatten(2).transpose(1, 2)
            embeddings += [tokens, tokens]
        return embeddings
