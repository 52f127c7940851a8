"""The bridge-matching objective of LiveMoments (paper Sec. 3.1, Appendix B), in closed form.

The forward process between the high-quality latent z_H and the low-quality latent z_L is

    z_t = α(t)·z_H + β(t)·z_L + σ(t)·ε,   t ∈ [0, 0.2],
    α(t) = (1 − t)(0.2 − t)/0.2,   β(t) = (1 − t)·t/0.2,   σ(t) = t,

so z_0 = z_H and z_0.2 = 0.8·z_L + 0.2·ε, exactly the sampler's start state
(`sampler.initial_latent`). The network regresses the time derivative of that path,

    dz_t/dt = α'(t)·z_H + β'(t)·z_L + ε,   α'(t) = (2t − 1.2)/0.2,   β'(t) = (1 − 2t)/0.2,

with a mean squared error. Why the derivative with this sign: `sampler.euler_sample` steps
z ← z + (σ_{k+1} − σ_k)·v(z, σ_k) with σ falling from 0.2 to 0, i.e. it integrates dz/dσ = v
backwards, and calls the network with timestep 1000·σ. A network that predicts dz_t/dt at
timestep 1000·t is therefore exactly what the sampler integrates (tests integrate the closed-form
target with the sampler and land on z_H up to Euler's known error).
"""

from __future__ import annotations

import torch

T_MAX = 0.2
"""The bridge's end time: z_{0.2} = 0.8·z_L + 0.2·ε (the sampler's first σ is 0.2002)."""

TIMESTEP_SCALE = 1000.0
"""The transformer's timestep is 1000·t, as in the sampler (`TwoBranchVelocity`)."""


def _t(t: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    """t as a tensor broadcastable against a [B, C, H, W] latent (one t per batch item)."""
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    if t.dim() == 1:
        t = t.view(-1, *([1] * (like.dim() - 1)))
    return t


def alpha(t: torch.Tensor | float) -> torch.Tensor | float:
    """Weight of z_H: (1 − t)(0.2 − t)/0.2 (1 at t = 0, 0 at t = 0.2)."""
    return (1 - t) * (T_MAX - t) / T_MAX


def beta(t: torch.Tensor | float) -> torch.Tensor | float:
    """Weight of z_L: (1 − t)·t/0.2 (0 at t = 0, 0.8 at t = 0.2)."""
    return (1 - t) * t / T_MAX


def sigma(t: torch.Tensor | float) -> torch.Tensor | float:
    """Weight of the noise: t."""
    return t


def alpha_prime(t: torch.Tensor | float) -> torch.Tensor | float:
    """dα/dt = (2t − 1.2)/0.2."""
    return (2 * t - (1 + T_MAX)) / T_MAX


def beta_prime(t: torch.Tensor | float) -> torch.Tensor | float:
    """dβ/dt = (1 − 2t)/0.2."""
    return (1 - 2 * t) / T_MAX


def bridge_state(
    z_h: torch.Tensor, z_l: torch.Tensor, noise: torch.Tensor, t: torch.Tensor | float
) -> torch.Tensor:
    """z_t = α(t)·z_H + β(t)·z_L + σ(t)·ε for one t per batch item (or one for all)."""
    _same_shapes(z_h, z_l, noise)
    tt = _t(t, z_h)
    return alpha(tt) * z_h + beta(tt) * z_l + sigma(tt) * noise


def velocity_target(
    z_h: torch.Tensor, z_l: torch.Tensor, noise: torch.Tensor, t: torch.Tensor | float
) -> torch.Tensor:
    """dz_t/dt = α'(t)·z_H + β'(t)·z_L + ε: what the network regresses at timestep 1000·t."""
    _same_shapes(z_h, z_l, noise)
    tt = _t(t, z_h)
    return alpha_prime(tt) * z_h + beta_prime(tt) * z_l + noise


def sample_t(
    batch: int, generator: torch.Generator, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """One t per batch item, uniform on [0, 0.2], drawn on the CPU from `generator` (so the
    same seed gives the same numbers on every device) and moved to `device` as float32."""
    return (torch.rand(batch, generator=generator, dtype=torch.float64) * T_MAX).to(
        device, torch.float32
    )


def timesteps(t: torch.Tensor) -> torch.Tensor:
    """The transformer's timestep for bridge time t: 1000·t, kept in float32 (as the sampler
    does: in bf16, 200.17 would round to 200)."""
    return (TIMESTEP_SCALE * t).to(torch.float32)


def bridge_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over every latent value, computed in float32 whatever the dtype."""
    if prediction.shape != target.shape:
        raise ValueError(f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)}")
    return torch.mean((prediction.float() - target.float()) ** 2)


def _same_shapes(*tensors: torch.Tensor) -> None:
    shapes = {tuple(x.shape) for x in tensors}
    if len(shapes) != 1:
        raise ValueError(f"z_H, z_L and ε must have one shape, got {sorted(shapes)}")
