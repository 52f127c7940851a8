"""The LiveMoments bridge sampler as pure math.

The official script builds SD3's `FlowMatchEulerDiscreteScheduler` (shift 3, 1000 steps), picks
the indices `linspace(923, 999, 6).long()`, reads their σ and runs six Euler steps from
0.8·z_LQ + 0.2·ε. Nothing of the scheduler is needed beyond those numbers, so they are computed
here (σ = 3s/(1+2s), s = (1000 − idx)/1000) and the loop is a plain Euler integrator that takes
any velocity function: testable without a network, and identical to the scheduler route.
Callers steer it only through callbacks (`on_step_end`, after diffusers' `callback_on_step_end`),
so the step itself has one home (`euler_step`) and stays pure math.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True)
class StepEnd:
    """The state after Euler step `index` of `count`: the new latent at σ = `sigma_next` and the
    velocity that moved it there from σ = `sigma`.

    Why the velocity travels with it: a caller that steers the sampling (motion guidance for
    clips, `core.livemoments.video_guidance`) needs the predicted clean latent, and along one
    Euler step it is the same at both ends: z_next − σ_next·v = z − σ·v.
    """

    index: int
    count: int
    sigma: float
    sigma_next: float
    latent: torch.Tensor
    velocity: torch.Tensor

    @property
    def is_last(self) -> bool:
        return self.index == self.count - 1

    def predicted_clean(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """x̂0 = z − σ·v (rectified flow: z = (1 − σ)·x0 + σ·ε, v = ε − x0), in `dtype`
        (default: at least float32, the precision of the step itself)."""
        work = dtype or torch.promote_types(self.latent.dtype, torch.float32)
        return self.latent.to(work) - self.sigma_next * self.velocity.to(work)


StepEndCallback = Callable[[StepEnd], torch.Tensor | None]
"""Called after every step (diffusers' `callback_on_step_end`): returns the latent to continue
from, or None to keep the step's own."""


def euler_step(z: torch.Tensor, v: torch.Tensor, sigma: float, sigma_next: float) -> torch.Tensor:
    """One explicit Euler step of dz/dσ = v from σ to σ_next, computed in (at least) float32 and
    cast back to z's dtype, as diffusers' scheduler does."""
    work = torch.promote_types(z.dtype, torch.float32)
    return (z.to(work) + (sigma_next - sigma) * v.to(work)).to(z.dtype)


def euler_sample(
    velocity_fn: VelocityFn,
    z0: torch.Tensor,
    sigmas: Sequence[float] | None = None,
    on_step: StepCallback | None = None,
    on_step_end: StepEndCallback | None = None,
) -> torch.Tensor:
    """Integrate dz/dσ = v(z, σ) from σ_0 down to σ_N with explicit Euler steps (`euler_step`).

    `on_step(k, n)` runs before step k of n; it is where callers check for cancellation.
    `on_step_end(StepEnd)` runs after each step and may replace the latent (a returned tensor
    must keep z0's shape and dtype); without it, or when it returns None, the sampling is
    plain Euler.
    """
    sig = bridge_sigmas() if sigmas is None else list(sigmas)
    n = len(sig) - 1
    z = z0
    for k in range(n):
        if on_step is not None:
            on_step(k, n)
        v = velocity_fn(z, sig[k])
        z = euler_step(z, v, sig[k], sig[k + 1])
        if on_step_end is not None:
            replaced = on_step_end(StepEnd(k, n, sig[k], sig[k + 1], z, v))
            if replaced is not None:
                if replaced.shape != z.shape or replaced.dtype != z.dtype:
                    raise ValueError(
                        f"on_step_end returned {tuple(replaced.shape)} {replaced.dtype}, "
                        f"expected {tuple(z.shape)} {z.dtype}"
                    )
                z = replaced
    return z
