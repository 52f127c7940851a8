"""The bridge objective against its closed form, finite differences and the sampler."""

from __future__ import annotations

import itertools

import pytest
import torch

from core.livemoments.sampler import bridge_sigmas, euler_sample, initial_latent
from core.livemoments.training import objective as ob


def _latents(seed: int = 0, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(3, 16, 4, 5, generator=g, dtype=dtype) for _ in range(3))


def test_coefficients_are_the_papers() -> None:
    for t in (0.0, 0.013, 0.05, 0.1, 0.1999, 0.2):
        assert ob.alpha(t) == pytest.approx((1 - t) * (0.2 - t) / 0.2, abs=1e-15)
        assert ob.beta(t) == pytest.approx((1 - t) * t / 0.2, abs=1e-15)
        assert ob.sigma(t) == t
        # The derivatives written out by hand: α = (0.2 − 1.2t + t²)/0.2, β = (t − t²)/0.2.
        assert ob.alpha_prime(t) == pytest.approx((-1.2 + 2 * t) / 0.2, abs=1e-12)
        assert ob.beta_prime(t) == pytest.approx((1 - 2 * t) / 0.2, abs=1e-12)


def test_end_points_are_z_h_and_the_samplers_start() -> None:
    z_h, z_l, eps = _latents()
    assert torch.equal(ob.bridge_state(z_h, z_l, eps, 0.0), z_h)
    # t = 0.2 is exactly where the sampler starts from: 0.8·z_L + 0.2·ε.
    start = ob.bridge_state(z_h, z_l, eps, torch.full((3,), 0.2, dtype=torch.float64))
    torch.testing.assert_close(start, initial_latent(z_l, eps), rtol=0, atol=1e-15)


def test_per_item_t_and_closed_form() -> None:
    z_h, z_l, eps = _latents(1)
    t = torch.tensor([0.0, 0.07, 0.2], dtype=torch.float64)
    z_t = ob.bridge_state(z_h, z_l, eps, t)
    target = ob.velocity_target(z_h, z_l, eps, t)
    for i, ti in enumerate(t.tolist()):
        a, b = (1 - ti) * (0.2 - ti) / 0.2, (1 - ti) * ti / 0.2
        torch.testing.assert_close(z_t[i], a * z_h[i] + b * z_l[i] + ti * eps[i])
        da, db = (2 * ti - 1.2) / 0.2, (1 - 2 * ti) / 0.2
        torch.testing.assert_close(target[i], da * z_h[i] + db * z_l[i] + eps[i])


@pytest.mark.parametrize("t", [0.0005, 0.03, 0.1, 0.17, 0.1995])
def test_target_is_the_derivative_by_finite_differences(t: float) -> None:
    z_h, z_l, eps = _latents(2)
    h = 1e-6
    numeric = (ob.bridge_state(z_h, z_l, eps, t + h) - ob.bridge_state(z_h, z_l, eps, t - h)) / (
        2 * h
    )
    # z_t is quadratic in t, so the central difference is exact up to rounding: in float64
    # each z_t carries ~1e-16·|z| error, divided by 2h gives ~1e-10 (latents are O(1)).
    torch.testing.assert_close(ob.velocity_target(z_h, z_l, eps, t), numeric, rtol=0, atol=1e-8)
    # ... and the other sign convention is far off.
    assert (ob.velocity_target(z_h, z_l, eps, t) + numeric).abs().max() > 1.0


def test_the_sampler_integrates_the_target_back_to_z_h() -> None:
    """With the exact velocity (the objective's target, a function of t alone) the six-step
    sampler lands on z_H up to Euler's error, which for this quadratic path is known exactly:
    each step of size h misses by ½h²·z'' with z'' = 10(z_H − z_L), and the sampler starts at
    σ₀ = 0.2002 from the t = 0.2 state. A wrong sign or timestep scale fails by O(1)."""
    z_h, z_l, eps = _latents(3)
    sigmas = bridge_sigmas()
    seen: list[float] = []

    def oracle(z: torch.Tensor, s: float) -> torch.Tensor:
        seen.append(s)
        return ob.velocity_target(z_h, z_l, eps, s)

    out = euler_sample(oracle, initial_latent(z_l, eps), sigmas)
    assert seen == sigmas[:-1]
    steps = [b - a for a, b in itertools.pairwise(sigmas)]
    euler_error = -sum(0.5 * h * h for h in steps) * 10 * (z_h - z_l)
    start_offset = ob.bridge_state(z_h, z_l, eps, 0.2) - ob.bridge_state(z_h, z_l, eps, sigmas[0])
    torch.testing.assert_close(out, z_h + euler_error + start_offset, rtol=0, atol=1e-12)
    assert (out - z_h).abs().max() < 0.1 * (z_h - z_l).abs().max()
    backwards = euler_sample(lambda z, s: -oracle(z, s), initial_latent(z_l, eps), sigmas)
    assert (backwards - z_h).abs().max() > 1.0


def test_timesteps_sample_t_and_loss() -> None:
    g = torch.Generator().manual_seed(0)
    t = ob.sample_t(4096, g)
    assert t.dtype == torch.float32 and float(t.min()) >= 0.0 and float(t.max()) <= 0.2
    assert abs(float(t.mean()) - 0.1) < 0.005  # uniform on [0, 0.2]: sd of the mean ≈ 0.0009
    assert torch.equal(ob.sample_t(8, torch.Generator().manual_seed(5)),
                       ob.sample_t(8, torch.Generator().manual_seed(5)))
    # 1000·t in float32 even from bf16 (200.17 must not round to 200).
    ts = ob.timesteps(torch.tensor([0.20017], dtype=torch.float32))
    assert ts.dtype == torch.float32 and float(ts) == pytest.approx(200.17, abs=1e-3)
    a = torch.zeros(2, 16, 2, 2, dtype=torch.bfloat16)
    b = torch.full((2, 16, 2, 2), 2.0)
    assert float(ob.bridge_loss(a, b)) == 4.0
    with pytest.raises(ValueError):
        ob.bridge_loss(a, b[:1])
    with pytest.raises(ValueError):
        ob.bridge_state(a, b, b[:1], 0.1)
