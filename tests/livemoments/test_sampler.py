"""The bridge sampler: published schedule, start state, exactness on known velocity fields."""

from __future__ import annotations

import itertools

import pytest
import torch

from core.livemoments.sampler import (
    PUBLISHED_SIGMAS,
    StepEnd,
    bridge_sigmas,
    euler_sample,
    initial_latent,
    seeded_noise,
    timesteps,
)


def test_sigmas_are_the_published_six_then_zero() -> None:
    sigmas = bridge_sigmas()
    assert len(sigmas) == 7 and sigmas[-1] == 0.0
    assert sigmas[:6] == pytest.approx(PUBLISHED_SIGMAS, abs=5e-5)
    assert all(a > b for a, b in itertools.pairwise(sigmas))
    assert timesteps() == pytest.approx([200.17, 165.48, 128.89, 90.23, 49.32, 2.99], abs=0.01)


def test_sigmas_match_the_sd3_scheduler_route() -> None:
    from diffusers import FlowMatchEulerDiscreteScheduler

    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0)
    idx = torch.linspace(923, 999, 6).long()
    expected = scheduler.sigmas[idx].tolist()
    assert bridge_sigmas(include_terminal=False) == pytest.approx(expected, abs=1e-6)


def test_initial_latent_is_point_eight_lq_plus_point_two_noise() -> None:
    z_lq = torch.randn(1, 16, 4, 4)
    noise = torch.randn(1, 16, 4, 4)
    z0 = initial_latent(z_lq, noise)
    torch.testing.assert_close(z0, 0.8 * z_lq + 0.2 * noise)
    torch.testing.assert_close(initial_latent(z_lq, torch.zeros_like(z_lq)), 0.8 * z_lq)
    with pytest.raises(ValueError):
        initial_latent(z_lq, noise[:, :8])


def test_seeded_noise_is_reproducible_and_seed_dependent() -> None:
    a = seeded_noise((2, 3), seed=7)
    torch.testing.assert_close(a, seeded_noise((2, 3), seed=7))
    assert not torch.equal(a, seeded_noise((2, 3), seed=8))


def test_exact_straight_line_velocity_lands_on_target() -> None:
    """From z0 at σ0, the straight path to z_HQ has constant velocity (z0 − z_HQ)/σ0."""
    gen = torch.Generator().manual_seed(0)
    z_hq, z_lq, eps = (torch.randn(1, 16, 6, 6, generator=gen, dtype=torch.float64) for _ in "abc")
    z0 = initial_latent(z_lq, eps)
    s0 = bridge_sigmas()[0]
    velocity = (z0 - z_hq) / s0
    out = euler_sample(lambda z, s: velocity, z0)
    torch.testing.assert_close(out, z_hq, rtol=0, atol=1e-9)


def test_state_dependent_exact_velocity_lands_on_target() -> None:
    """v(z, σ) = (z − z_HQ)/σ is the exact field of every straight path into z_HQ."""
    gen = torch.Generator().manual_seed(1)
    z_hq = torch.randn(2, 16, 4, 4, generator=gen, dtype=torch.float64)
    z0 = torch.randn(2, 16, 4, 4, generator=gen, dtype=torch.float64)
    calls: list[tuple[int, int]] = []
    out = euler_sample(lambda z, s: (z - z_hq) / s, z0, on_step=lambda k, n: calls.append((k, n)))
    torch.testing.assert_close(out, z_hq, rtol=0, atol=1e-9)
    assert calls == [(k, 6) for k in range(6)]


def test_wrong_velocity_does_not_land_on_target() -> None:
    z_hq = torch.ones(1, 4)
    out = euler_sample(lambda z, s: torch.zeros_like(z), torch.zeros(1, 4))
    assert not torch.allclose(out, z_hq)


def test_any_integer_seed_draws_noise() -> None:
    """The pipeline derives per-tile seeds as seed·100003 + tile index: for a seed near 2^63
    that is far beyond the generator's 64-bit range, and must still draw (seed mod 2^64)."""
    big = (2**63 - 1) * 100_003 + 7
    noise = seeded_noise((2, 3), big)
    torch.testing.assert_close(noise, seeded_noise((2, 3), big % 2**64), rtol=0, atol=0)
    assert not torch.equal(noise, seeded_noise((2, 3), big + 1))


def test_on_step_end_sees_every_step_and_may_replace_the_latent() -> None:
    """The hook sees each step's latent and velocity (its predicted clean latent is the same at
    both ends of the step), and what it returns is where sampling continues."""
    gen = torch.Generator().manual_seed(2)
    z_hq = torch.randn(1, 4, 3, 3, generator=gen, dtype=torch.float64)
    z0 = torch.randn(1, 4, 3, 3, generator=gen, dtype=torch.float64)
    seen: list[tuple[int, int, bool]] = []

    def field(z: torch.Tensor, s: float) -> torch.Tensor:
        return (z - z_hq) / s

    def watch(state: StepEnd) -> None:
        seen.append((state.index, state.count, state.is_last))
        # Along the exact field every step's predicted clean latent is the target itself.
        torch.testing.assert_close(state.predicted_clean(), z_hq, rtol=0, atol=1e-9)

    torch.testing.assert_close(euler_sample(field, z0, on_step_end=watch), z_hq, rtol=0, atol=1e-9)
    assert seen == [(k, 6, k == 5) for k in range(6)]

    # Replacing the latent after the last step replaces the result; a wrong shape is refused.
    other = torch.zeros_like(z0)
    out = euler_sample(field, z0, on_step_end=lambda st: other if st.is_last else None)
    assert torch.equal(out, other)
    with pytest.raises(ValueError, match="on_step_end returned"):
        euler_sample(field, z0, on_step_end=lambda st: other[..., :2])
