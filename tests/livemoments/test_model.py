"""The two-branch transformer: wiring equivalence, motion path, hooks, published key names."""

from __future__ import annotations

import torch

from core.livemoments.config import FULL_MOTION, TINY_MOTION, TINY_TRANSFORMER
from core.livemoments.model import ReferenceKVCapture, TwoBranchVelocity, build_transformer
from core.livemoments.motion_encoder import MotionEncoder


def _nets(seed: int = 0):
    torch.manual_seed(seed)
    stock = build_transformer(TINY_TRANSFORMER, restoration=False).eval()
    main = build_transformer(TINY_TRANSFORMER, restoration=True).eval()
    main.load_state_dict(stock.state_dict(), strict=False)
    ref = build_transformer(TINY_TRANSFORMER, restoration=False).eval()
    ref.load_state_dict(stock.state_dict())
    return stock, main, ref


def _inputs(batch: int = 2):
    gen = torch.Generator().manual_seed(5)
    z = torch.randn(batch, 16, 8, 8, generator=gen)
    ctx = torch.randn(1, 5, TINY_TRANSFORMER["joint_attention_dim"], generator=gen)
    pooled = torch.randn(1, TINY_TRANSFORMER["pooled_projection_dim"], generator=gen)
    return z, ctx, pooled


def _stock_out(stock, z, ctx, pooled, sigma):
    b = z.shape[0]
    return stock(
        hidden_states=z,
        encoder_hidden_states=ctx.expand(b, -1, -1),
        pooled_projections=pooled.expand(b, -1),
        timestep=torch.full((b,), 1000 * sigma),
        return_dict=False,
    )[0]


def _motion(batch: int, scale: float = 1.0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(9)
    n = TINY_TRANSFORMER["num_layers"]
    return [scale * torch.randn(batch, 16, 16, generator=gen) for _ in range(n)]


@torch.no_grad()
def test_duplicated_keys_leave_attention_unchanged() -> None:
    """ReferenceNet = RestorationNet, same input, zero point_proj: output equals stock SD3."""
    stock, main, ref = _nets()
    z, ctx, pooled = _inputs()
    velocity = TwoBranchVelocity(main, ref, ctx, pooled)
    out = velocity(z, 0.2, z, _motion(2))  # point_proj is zero-initialised
    expected = _stock_out(stock, z, ctx, pooled, 0.2)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)
    velocity.close()


@torch.no_grad()
def test_zero_motion_with_trained_projection_is_also_unchanged() -> None:
    stock, main, ref = _nets(1)
    for proc in main.attn_processors.values():
        proc.point_proj.weight.normal_()
    z, ctx, pooled = _inputs()
    with ReferenceKVCapture(ref):
        pass
    velocity = TwoBranchVelocity(main, ref, ctx, pooled)
    out = velocity(z, 0.1, z, _motion(2, scale=0.0))
    torch.testing.assert_close(out, _stock_out(stock, z, ctx, pooled, 0.1), rtol=0, atol=1e-5)
    # ... while real motion through a non-zero projection changes the prediction.
    moved = velocity(z, 0.1, z, _motion(2))
    assert (moved - out).abs().max() > 1e-3
    velocity.close()


@torch.no_grad()
def test_reference_content_reaches_the_main_branch() -> None:
    _stock, main, ref = _nets(2)
    z, ctx, pooled = _inputs()
    velocity = TwoBranchVelocity(main, ref, ctx, pooled)
    a = velocity(z, 0.2, z, None)
    b = velocity(z, 0.2, torch.randn_like(z), None)
    assert (a - b).abs().max() > 1e-4
    velocity.close()


def test_hooks_are_registered_once_and_removed() -> None:
    ref = build_transformer(TINY_TRANSFORMER, restoration=False)
    capture = ReferenceKVCapture(ref)
    assert capture.hooked == 4 * TINY_TRANSFORMER["num_layers"]
    hooked = [m for m in ref.modules() if m._forward_hooks]
    assert len(hooked) == capture.hooked
    capture.close()
    assert not any(m._forward_hooks for m in ref.modules())


def test_point_proj_lands_under_the_published_key_names() -> None:
    main = build_transformer(TINY_TRANSFORMER, restoration=True)
    stock = build_transformer(TINY_TRANSFORMER, restoration=False)
    extra = set(main.state_dict()) - set(stock.state_dict())
    n = TINY_TRANSFORMER["num_layers"]
    assert extra == {f"transformer_blocks.{i}.attn.processor.point_proj.weight" for i in range(n)}
    for i in range(n):
        assert not main.state_dict()[
            f"transformer_blocks.{i}.attn.processor.point_proj.weight"
        ].any()


def test_motion_encoder_matches_the_published_layout() -> None:
    with torch.device("meta"):
        full = MotionEncoder(FULL_MOTION)
    keys = set(full.state_dict())
    expected = {f"blocks.0.{i}.{p}" for i in (0, 2, 4, 6) for p in ("weight", "bias")}
    expected |= {f"blocks.{b}.0.{p}" for b in range(1, 12) for p in ("weight", "bias")}
    assert keys == expected and len(keys) == 30
    params = sum(p.numel() for p in full.parameters())
    assert abs(params - 66.09e6) < 0.01e6


def test_motion_encoder_gives_two_embeddings_per_block_on_the_token_grid() -> None:
    enc = MotionEncoder(TINY_MOTION)
    out = enc(torch.randn(2, 2, 64, 48))
    assert len(out) == TINY_MOTION.num_embeddings == TINY_TRANSFORMER["num_layers"]
    assert all(e.shape == (2, (64 // 16) * (48 // 16), 16) for e in out)
    assert out[0] is out[1] and out[2] is out[3] and not torch.equal(out[1], out[2])


@torch.no_grad()
def test_lockstep_equals_two_whole_passes() -> None:
    _stock, main, ref = _nets(3)
    torch.manual_seed(4)
    ref = build_transformer(TINY_TRANSFORMER, restoration=False).eval()  # a different ReferenceNet
    for proc in main.attn_processors.values():
        proc.point_proj.weight.normal_(std=0.1)
    z, ctx, pooled = _inputs()
    z_ref = torch.randn_like(z)
    motion = _motion(2)
    lock = TwoBranchVelocity(main, ref, ctx, pooled, lockstep=True)
    out_lock = lock(z, 0.13, z_ref, motion)
    lock.close()
    whole = TwoBranchVelocity(main, ref, ctx, pooled, lockstep=False)
    out_whole = whole(z, 0.13, z_ref, motion)
    whole.close()
    torch.testing.assert_close(out_lock, out_whole, rtol=0, atol=1e-6)
    assert not whole.capture.bank and not lock.capture.bank


@torch.no_grad()
def test_timesteps_reach_the_nets_in_float32_at_any_precision() -> None:
    """bf16 would round 1000·σ (200.17 → 200, 128.89 → 129): the schedule must stay exact."""
    _stock, main, ref = _nets(5)
    main, ref = main.to(torch.bfloat16), ref.to(torch.bfloat16)
    z, ctx, pooled = (x.to(torch.bfloat16) for x in _inputs())
    seen: list[torch.Tensor] = []
    for net in (main, ref):
        net.time_text_embed.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    for lockstep in (True, False):
        velocity = TwoBranchVelocity(main, ref, ctx, pooled, lockstep=lockstep)
        out = velocity(z, 0.20017, z, None)
        velocity.close()
        assert out.dtype == torch.bfloat16
    assert len(seen) == 4
    for t in seen:
        assert t.dtype == torch.float32
        torch.testing.assert_close(t, torch.full_like(t, 1000.0 * 0.20017), rtol=0, atol=0)
