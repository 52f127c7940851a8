"""The LiveMoments bridge sampler as pure math.

The official script builds SD3's `FlowMatchEulerDiscreteScheduler` (shift 3, 1000 steps), picks
the indices `linspace(923, 999, 6).long()`, reads their σ and runs six Euler steps from
0.8·z_LQ + 0.2·ε. Nothing of the scheduler is needed beyond those numbers, so they are computed
here (σ = 3s/(1+2s), s = (1000 − idx)/1000) and the loop is a plain Euler integrator that takes
any velocity function: testable without a network, and identical to the scheduler route.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

NUM_TRAIN_TIMESTEPS = 1000
SHIFT = 3.0
START_INDEX = 923
NUM_STEPS = 6
LQ_WEIGHT = 0.8
NOISE_WEIGHT = 0.2

PUBLISHED_SIGMAS = (0.2002, 0.1655, 0.1289, 0.0902, 0.0493, 0.0030)
"""The six σ values as printed in the paper's code path (rounded to 4 digits)."""


def bridge_sigmas(include_terminal: bool = True) -> list[float]:
    """The six σ of the published schedule, largest first, plus the terminal σ = 0."""
    indices = np.linspace(START_INDEX, NUM_TRAIN_TIMESTEPS - 1, NUM_STEPS).astype(np.int64)
    s = (NUM_TRAIN_TIMESTEPS - indices) / NUM_TRAIN_TIMESTEPS
    sigmas = [float(v) for v in SHIFT * s / (1.0 + (SHIFT - 1.0) * s)]
    return [*sigmas, 0.0] if include_terminal else sigmas


def timesteps(sigmas: Sequence[float] | None = None) -> list[float]:
    """Transformer timesteps (σ·1000) of every step, terminal σ excluded."""
    sig = bridge_sigmas(include_terminal=False) if sigmas is None else list(sigmas)
    return [NUM_TRAIN_TIMESTEPS * s for s in sig]


def initial_latent(z_lq: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The bridge's start state at t = 0.2: 0.8·z_LQ + 0.2·ε."""
    if z_lq.shape != noise.shape:
        raise ValueError(f"latent {tuple(z_lq.shape)} and noise {tuple(noise.shape)} differ")
    return LQ_WEIGHT * z_lq + NOISE_WEIGHT * noise


def seeded_noise(
    shape: Sequence[int],
    seed: int,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Gaussian noise drawn on the CPU from `seed`: the same numbers on every device.

    Any integer is accepted: it is taken modulo 2^64, the generator's seed range (per-tile
    seeds are derived from the job's seed by multiplication and would otherwise overflow).
    """
    generator = torch.Generator(device="cpu").manual_seed(int(seed) % 2**64)
    return torch.randn(tuple(shape), generator=generator, dtype=torch.float32).to(device, dtype)


VelocityFn = Callable[[torch.Tensor, float], torch.Tensor]
StepCallback = Callable[[int, int], None]


def euler_sample(
    velocity_fn: VelocityFn,
    z0: torch.Tensor,
    sigmas: Sequence[float] | None = None,
    on_step: StepCallback | None = None,
) -> torch.Tensor:
    """Integrate dz/dσ = v(z, σ) from σ_0 down to σ_N with explicit Euler steps.

    `on_step(k, n)` runs before step k of n; it is where callers check for cancellation.
    The update is computed in (at least) float32 and cast back, as diffusers' scheduler does.
    """
    sig = bridge_sigmas() if sigmas is None else list(sigmas)
    n = len(sig) - 1
    work = torch.promote_types(z0.dtype, torch.float32)
    z = z0
    for k in range(n):
        if on_step is not None:
            on_step(k, n)
        v = velocity_fn(z, sig[k])
        z = (z.to(work) + (sig[k + 1] - sig[k]) * v.to(work)).to(z0.dtype)
    return z
