"""Motion-guided latent guidance (MGLD-VSR) on the LiveMoments bridge, with tiny random networks
on the CPU: it lowers the latent warping error it targets, leaves occluded cells alone, and is
plain sampling at strength 0."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.livemoments.config import sizes
from core.livemoments.model import TwoBranchVelocity, build_transformer
from core.livemoments.sampler import euler_sample, initial_latent, seeded_noise
from core.livemoments.video_guidance import (
    MotionGuidance,
    guided_euler_sample,
    latent_flow,
    latent_mask,
    latent_warping_error,
    warp_latent,
)

LATENT = (8, 8)
SHIFT = 1  # the scene moves one latent cell (8 pixels) right between the two frames


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny networks are latency-bound: on a shared, loaded machine OpenMP's spinning threads
    make them many times slower (as tests/livemoments found), so run them single-threaded."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def velocity() -> TwoBranchVelocity:
    torch.manual_seed(5)
    spec = sizes("tiny")
    main = build_transformer(spec.transformer, restoration=True).eval()
    ref = build_transformer(spec.transformer, restoration=False).eval()
    width = spec.transformer["joint_attention_dim"]
    prompt = 0.1 * torch.randn(1, spec.prompt_tokens, width)
    pooled = 0.1 * torch.randn(1, spec.transformer["pooled_projection_dim"])
    return TwoBranchVelocity(main, ref, prompt, pooled)


@pytest.fixture(scope="module")
def frames(velocity: TwoBranchVelocity) -> dict[str, torch.Tensor]:
    """Two frames' latents (the second is the first moved one cell right, plus its own
    noise), the first restored without guidance, and the flow between them."""
    channels = velocity.transformer.config.in_channels
    gen = torch.Generator().manual_seed(1)
    scene = torch.randn(1, channels, LATENT[0], LATENT[1] + SHIFT, generator=gen)
    first = scene[..., SHIFT:]
    second = scene[..., :-SHIFT] + 0.3 * torch.randn(1, channels, *LATENT, generator=gen)
    reference = torch.randn(1, channels, *LATENT, generator=gen)
    return {"first": first, "second": second, "reference": reference}


def sample(velocity: TwoBranchVelocity, z_lq: torch.Tensor, reference: torch.Tensor,
           guidance: MotionGuidance | None, seed: int) -> torch.Tensor:
    def field(z: torch.Tensor, sigma: float) -> torch.Tensor:
        return velocity(z, sigma, reference, None)

    z0 = initial_latent(z_lq, seeded_noise(z_lq.shape, seed))
    with torch.inference_mode():
        return guided_euler_sample(field, z0, guidance)


def test_guidance_lowers_the_latent_warping_error(
    velocity: TwoBranchVelocity, frames: dict[str, torch.Tensor]
) -> None:
    previous = sample(velocity, frames["first"], frames["reference"], None, seed=1)
    # Pixel flow second → first: content at x in the second frame is at x − 8 px in the first.
    flow = np.zeros((LATENT[0] * 8, LATENT[1] * 8, 2), np.float32)
    flow[..., 0] = -8.0 * SHIFT
    cells = latent_flow(flow, LATENT)
    assert torch.allclose(cells[0, 0], torch.full(LATENT, -float(SHIFT)))
    confidence = np.ones(flow.shape[:2], np.float32)
    confidence[:, : 8 * SHIFT] = 0.0  # the column that entered the frame: occluded
    mask = latent_mask(confidence, LATENT)
    warped = warp_latent(previous, cells)
    guidance = MotionGuidance(warped, mask, strength=0.2)

    plain = sample(velocity, frames["second"], frames["reference"], None, seed=2)
    guided = sample(velocity, frames["second"], frames["reference"], guidance, seed=2)
    before = latent_warping_error(plain, warped, mask)
    after = latent_warping_error(guided, warped, mask)
    # (1 - 0.2)^6 = 0.26 of it would be left if the network neither pulled back nor helped;
    # with these random networks 0.07 is left (they contract the latent a little themselves).
    assert after < 0.26 * before, (before, after)
    stronger = sample(velocity, frames["second"], frames["reference"],
                      MotionGuidance(warped, mask, strength=0.6), seed=2)
    assert latent_warping_error(stronger, warped, mask) < after
    # Where the flow is occluded the guidance does nothing at the first step; what changes there
    # later comes only through the network (its attention mixes cells), so it changes far less.
    inside = (guided - plain)[..., SHIFT:].abs().mean()
    occluded = (guided - plain)[..., :SHIFT].abs().mean()
    assert occluded < inside


def test_strength_zero_is_plain_sampling(
    velocity: TwoBranchVelocity, frames: dict[str, torch.Tensor]
) -> None:
    def field(z: torch.Tensor, sigma: float) -> torch.Tensor:
        return velocity(z, sigma, frames["reference"], None)

    z0 = initial_latent(frames["second"], seeded_noise(frames["second"].shape, 4))
    zero = MotionGuidance(torch.zeros_like(z0), torch.ones(1, 1, *LATENT), strength=0.0)
    with torch.inference_mode():
        expected = euler_sample(field, z0)
        assert torch.equal(guided_euler_sample(field, z0, None), expected)
        assert torch.equal(guided_euler_sample(field, z0, zero), expected)


def test_warp_latent_moves_by_whole_cells_and_strength_is_checked() -> None:
    latent = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4)
    flow = torch.zeros(1, 2, 4, 4)
    flow[:, 1] = 1.0  # sample one row below
    moved = warp_latent(latent, flow)
    assert torch.equal(moved[0, 0, :3], latent[0, 0, 1:])
    assert torch.equal(moved[0, 0, 3], latent[0, 0, 3])  # border replicated
    with pytest.raises(ValueError, match="within"):
        MotionGuidance(latent, torch.ones(1, 1, 4, 4), strength=1.5)
