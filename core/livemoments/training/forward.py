"""What the networks see in training, computed the way inference computes it.

Inference (`core.livemoments.pipeline`) upsamples the video-resolution target and reference-LQ
bicubically to the reference's resolution, takes the flow reference-LQ crop → target tile with the
local flow estimator, feeds the raw flow to the motion encoder, encodes tiles with the VAE
posterior's mode and SD3's shift/scale, and calls the ReferenceNet and then the RestorationNet at
timestep 1000·t with the empty-prompt embeddings. `TrainingNetworks` does each of these the same
way (tests hold the results equal to the pipeline's own, bit for bit), with two differences that
training needs and that do not change the numbers:

* every batch item has its own t (the sampler uses one σ for the whole batch);
* the ReferenceNet's K/V bank is copied before the RestorationNet reads it, so that gradient
  checkpointing, which reruns blocks during the backward pass, still finds it (the capture's own
  bank is cleared after every pass).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from core.flow import FlowEstimator
from core.images import resize
from core.livemoments.load import LiveMomentsModels
from core.livemoments.model import ReferenceKVCapture
from core.livemoments.training.dataset import PairImages
from core.livemoments.training.objective import timesteps


@dataclass(slots=True)
class TileInputs:
    """One training tile at the fit's tile size: float32 H×W×3 in [0, 1]."""

    hq: np.ndarray
    lq_up: np.ndarray
    """The target upsampled bicubically to the reference grid (what the pipeline tiles)."""
    ref: np.ndarray
    ref_lq_up: np.ndarray


def tile_inputs(pair: PairImages, tile: int, offset: tuple[int, int] = (0, 0)) -> TileInputs:
    """Upsample the pair's video-resolution images as the pipeline does, then crop `tile`² at
    `offset` (the same window from all four; the pair's own tile when they are equal)."""
    size = pair.hq.shape[0]
    if tile > size:
        raise ValueError(f"fit tile {tile} is larger than the pairs' tile {size}")
    y, x = offset
    if not (0 <= y <= size - tile and 0 <= x <= size - tile):
        raise ValueError(f"crop offset {offset} outside a {size}² pair for tile {tile}")
    lq_up = resize(pair.lq, size, size, interpolation="bicubic")
    ref_lq_up = resize(pair.ref_lq, size, size, interpolation="bicubic")

    def crop(image: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(image[y : y + tile, x : x + tile], dtype=np.float32)

    return TileInputs(crop(pair.hq), crop(lq_up), crop(pair.ref), crop(ref_lq_up))


def to_model(
    images: Sequence[np.ndarray], device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """H×W×3 [0, 1] arrays → [B, 3, H, W] in [-1, 1] (as the pipeline's `_to_model`)."""
    batch = np.stack(images).transpose(0, 3, 1, 2)
    tensor = torch.from_numpy(np.ascontiguousarray(batch)).to(device, dtype)
    return (tensor * 2.0 - 1.0).clamp(-1, 1)


class TrainingNetworks:
    """The four networks of a `LiveMomentsModels`, used for training and validation.

    `autocast` (a dtype or None) runs the motion encoder and the transformers under
    `torch.autocast` (mixed precision); the VAE runs in its own dtype, as in inference.
    """

    def __init__(
        self, models: LiveMomentsModels, flow: FlowEstimator, autocast: torch.dtype | None = None
    ) -> None:
        self.models = models
        self.flow = flow
        self.autocast_dtype = autocast
        self.capture = ReferenceKVCapture(models.transformer_ref)
        vae = models.vae.config
        self.shift = float(vae.shift_factor)
        self.scale = float(vae.scaling_factor)

    @property
    def device(self) -> torch.device:
        return self.models.device

    def close(self) -> None:
        self.capture.close()

    @contextlib.contextmanager
    def precision(self) -> Iterator[None]:
        if self.autocast_dtype is None:
            yield
            return
        with torch.autocast(self.device.type, dtype=self.autocast_dtype):
            yield

    # ------------------------------------------------------------------ frozen parts

    @torch.no_grad()
    def encode(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """VAE posterior mode, shifted and scaled (SD3), as float32 latents [B, 16, h, w]."""
        pixels = to_model(images, self.device, self.models.vae_dtype)
        latent = self.models.vae.encode(pixels).latent_dist.mode()
        return ((latent - self.shift) * self.scale).to(self.models.dtype).float()

    @torch.no_grad()
    def decode(self, latent: torch.Tensor) -> np.ndarray:
        """Latents → float32 [B, H, W, 3] in [0, 1] (as the pipeline decodes a tile)."""
        z = (latent.to(self.models.vae_dtype) / self.scale) + self.shift
        pixels = self.models.vae.decode(z, return_dict=False)[0]
        return ((pixels.float().clamp(-1, 1) + 1.0) / 2.0).permute(0, 2, 3, 1).cpu().numpy()

    def flows(self, tiles: Sequence[TileInputs]) -> list[np.ndarray]:
        """The local flow of each tile: reference-LQ crop → target tile (reference grid)."""
        return [self.flow(t.ref_lq_up, t.lq_up) for t in tiles]

    # ------------------------------------------------------------------ trained parts

    def motion(self, flows: Sequence[np.ndarray]) -> list[torch.Tensor]:
        """The motion encoder's per-block embeddings from raw flows (pixels, [B, 2, H, W])."""
        batch = np.stack(flows).transpose(0, 3, 1, 2)
        tensor = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        tensor = tensor.to(self.device, next(self.models.motion_encoder.parameters()).dtype)
        with self.precision():
            return [e.to(self.models.dtype) for e in self.models.motion_encoder(tensor)]

    def predict(
        self,
        z_t: torch.Tensor,
        t: torch.Tensor,
        z_ref: torch.Tensor,
        motion: Sequence[torch.Tensor] | None,
    ) -> torch.Tensor:
        """G_θ(z_t, t): the RestorationNet's output at timestep 1000·t, one t per item."""
        models = self.models
        batch = z_t.shape[0]
        ctx = models.prompt_embeds.expand(batch, -1, -1)
        pooled = models.pooled_prompt_embeds.expand(batch, -1)
        ts = timesteps(t).to(self.device)
        dtype = models.dtype
        self.capture.bank.clear()
        try:
            with self.precision():
                models.transformer_ref(
                    hidden_states=z_ref.to(dtype),
                    encoder_hidden_states=ctx,
                    pooled_projections=pooled,
                    timestep=ts,
                    return_dict=False,
                )
                bank = dict(self.capture.bank)
                self.capture.bank.clear()
                return models.transformer(
                    hidden_states=z_t.to(dtype),
                    encoder_hidden_states=ctx,
                    pooled_projections=pooled,
                    timestep=ts,
                    joint_attention_kwargs={"ref_kv": bank, "motion": motion},
                    return_dict=False,
                )[0]
        finally:
            self.capture.bank.clear()

    def release(self) -> None:
        """Drop what the capture hooks stored while checkpointed blocks were rerun in the
        backward pass (they would otherwise hold one step's K/V until the next step)."""
        self.capture.bank.clear()
