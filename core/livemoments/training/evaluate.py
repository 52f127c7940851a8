"""How good a model is on held-out pairs: fit's validation, and `lmd train eval` for any restorer.

Fit's validation (`Validation`) is fixed when fit starts, so that its numbers compare across
evaluations and across an interrupted and resumed run: each held-out pair's centre crop, its
latents and flow (the VAE is frozen), and for the loss `DRAWS` bridge times on a regular grid of
[0, 0.2] with noise from a seed of their own. Its PSNR-Y comes from six-step restorations of the
held-out tiles with the inference sampler and velocity (`sampler.euler_sample`,
`TwoBranchVelocity`): the network as inference will use it, without tiling or colour fix.

`evaluate_restorer` measures a whole restorer (`core.restore`, any name, any checkpoint) on pair
sets: PSNR-Y and SSIM-Y of its result against the ground truth, next to the bicubic upscale of
the frame as a baseline, so an owner sees whether a fine-tune helped before switching to it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from core.images import resize
from core.livemoments.model import TwoBranchVelocity
from core.livemoments.sampler import bridge_sigmas, euler_sample, initial_latent, seeded_noise
from core.livemoments.training.dataset import PairImages, PairSet
from core.livemoments.training.forward import TileInputs, TrainingNetworks, tile_inputs
from core.livemoments.training.objective import (
    T_MAX,
    bridge_loss,
    bridge_state,
    velocity_target,
)
from core.metrics import psnr_y, ssim_y

DRAWS = 4
"""Bridge times per held-out pair in the validation loss: t = 0.2·(k + ½)/4, k = 0..3."""


def centre_offset(size: int, tile: int) -> tuple[int, int]:
    return (size - tile) // 2, (size - tile) // 2


@dataclass(slots=True)
class Validation:
    """Held-out tiles with everything that does not change during training precomputed."""

    tiles: list[TileInputs]
    z_h: torch.Tensor
    z_l: torch.Tensor
    z_ref: torch.Tensor
    flows: list[np.ndarray]
    t: torch.Tensor
    """[N·DRAWS] bridge times, pair-major."""
    noise: torch.Tensor
    seed: int

    def __len__(self) -> int:
        return len(self.tiles)


def build_validation(
    networks: TrainingNetworks, pairs: Sequence[PairImages], tile: int, seed: int
) -> Validation:
    if not pairs:
        raise ValueError("validation needs at least one held-out pair")
    tiles = [tile_inputs(p, tile, centre_offset(p.hq.shape[0], tile)) for p in pairs]
    z_h = torch.cat([networks.encode([t.hq]) for t in tiles])
    z_l = torch.cat([networks.encode([t.lq_up]) for t in tiles])
    z_ref = torch.cat([networks.encode([t.ref]) for t in tiles])
    grid = torch.tensor([T_MAX * (k + 0.5) / DRAWS for k in range(DRAWS)], dtype=torch.float32)
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(
        (len(tiles) * DRAWS, *z_h.shape[1:]), generator=generator, dtype=torch.float32
    )
    return Validation(
        tiles=tiles,
        z_h=z_h,
        z_l=z_l,
        z_ref=z_ref,
        flows=networks.flows(tiles),
        t=grid.repeat(len(tiles)).to(networks.device),
        noise=noise.to(networks.device),
        seed=seed,
    )


@torch.no_grad()
def validation_loss(networks: TrainingNetworks, val: Validation, batch: int) -> float:
    """Mean bridge loss over every held-out pair and draw (fixed t and ε: comparable)."""
    total, count = 0.0, 0
    index = torch.arange(len(val)).repeat_interleave(DRAWS)
    for start in range(0, len(index), max(1, batch)):
        rows = index[start : start + batch]
        sel = slice(start, start + len(rows))
        z_h, z_l, z_ref = val.z_h[rows], val.z_l[rows], val.z_ref[rows]
        t, noise = val.t[sel], val.noise[sel]
        motion = networks.motion([val.flows[int(i)] for i in rows])
        prediction = networks.predict(bridge_state(z_h, z_l, noise, t), t, z_ref, motion)
        loss = bridge_loss(prediction, velocity_target(z_h, z_l, noise, t))
        total += float(loss) * len(rows)
        count += len(rows)
    networks.release()
    return total / count


@torch.no_grad()
def restore_tiles(
    networks: TrainingNetworks, val: Validation, count: int | None = None
) -> list[np.ndarray]:
    """Six-step restorations of the first `count` held-out tiles, as inference samples them."""
    models = networks.models
    dtype, device = models.dtype, models.device
    velocity = TwoBranchVelocity(
        models.transformer, models.transformer_ref, models.prompt_embeds,
        models.pooled_prompt_embeds,
    )
    out = []
    try:
        n = len(val) if count is None else min(count, len(val))
        for i in range(n):
            z_lq = val.z_l[i : i + 1].to(dtype)
            noise = seeded_noise(z_lq.shape[1:], val.seed * 100_003 + i, dtype, device)[None]
            motion = networks.motion([val.flows[i]])
            z_ref = val.z_ref[i : i + 1].to(dtype)

            def v(z: torch.Tensor, s: float, _r: Any = z_ref, _m: Any = motion) -> torch.Tensor:
                with networks.precision():
                    return velocity(z, s, _r, _m)

            latent = euler_sample(v, initial_latent(z_lq, noise), bridge_sigmas())
            out.append(networks.decode(latent)[0])
    finally:
        velocity.close()
        networks.release()  # the training capture's hooks fired too: drop what they kept
    return out


def validation_psnr(networks: TrainingNetworks, val: Validation, count: int) -> float:
    """Mean PSNR-Y (dB) of six-step restorations of the first `count` held-out tiles."""
    restored = restore_tiles(networks, val, count)
    return float(np.mean([psnr_y(r, t.hq) for r, t in zip(restored, val.tiles, strict=False)]))


# --------------------------------------------------------------------------- any restorer


@dataclass(slots=True)
class PairScore:
    set: str
    id: str
    split: str
    psnr_y: float
    ssim_y: float
    bicubic_psnr_y: float
    bicubic_ssim_y: float
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in asdict(self).items()}


def _finite_mean(values: Sequence[float]) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def summary(scores: Sequence[PairScore]) -> dict[str, Any]:
    """Averages over the pairs (PSNR of identical images, +inf, is left out of its mean)."""
    return {
        "pairs": len(scores),
        "psnr_y": _finite_mean([s.psnr_y for s in scores]),
        "ssim_y": _finite_mean([s.ssim_y for s in scores]),
        "bicubic_psnr_y": _finite_mean([s.bicubic_psnr_y for s in scores]),
        "bicubic_ssim_y": _finite_mean([s.bicubic_ssim_y for s in scores]),
    }


SPLIT_CHOICES = ("all", "train", "val", "apart")


def evaluate_restorer(
    sets: Sequence[PairSet],
    restorer: str,
    options: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    split: str = "all",
    seed: int = 0,
    on_pair: Callable[[PairScore], None] | None = None,
) -> list[PairScore]:
    """Restore every pair of `split` with restorer `restorer` and score it against `hq`.

    One restorer instance serves all pairs (a model is loaded once). `options` go to its
    constructor, `params` into each request, as `lmd restore` passes them.
    """
    import core
    from core.api import RestoreRequest

    if split not in SPLIT_CHOICES:
        raise ValueError(f"split must be one of {', '.join(SPLIT_CHOICES)}, got {split!r}")
    instance = core.get_restorer(restorer, **dict(options or {}))
    scores = []
    for pair_set in sets:
        records = pair_set.records if split == "all" else pair_set.split(split)
        for record in records:
            pair = pair_set.load(record)
            started = time.perf_counter()
            request = RestoreRequest(
                target=pair.lq, reference=pair.ref, reference_lq=pair.ref_lq,
                restorer=restorer, params=dict(params or {}), seed=seed,
            )
            result = core.restore(request, restorer=instance)
            image = result.image
            if image.dtype == np.uint8:  # a `keeps_uint8` restorer (inputs here are float)
                image = image.astype(np.float32) / 255.0
            size = pair.hq.shape[0]
            bicubic = np.clip(resize(pair.lq, size, size, interpolation="bicubic"), 0.0, 1.0)
            score = PairScore(
                set=str(pair_set.root), id=record.id, split=record.split,
                psnr_y=psnr_y(image, pair.hq), ssim_y=ssim_y(image, pair.hq),
                bicubic_psnr_y=psnr_y(bicubic, pair.hq), bicubic_ssim_y=ssim_y(bicubic, pair.hq),
                seconds=time.perf_counter() - started,
            )
            scores.append(score)
            if on_pair is not None:
                on_pair(score)
    return scores
