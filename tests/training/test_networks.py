"""Training sees what inference sees: the same latents, flows, motion input and velocity; and the
variants (gradient checkpointing, LoRA, bf16 autocast) train what they should."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from core.flow import DISFlow
from core.livemoments.training.dataset import open_pair_set
from core.livemoments.training.forward import TrainingNetworks, tile_inputs
from core.livemoments.training.trainable import branch, merged_state_dict, trained_keys
from core.livemoments.training.trainer import FitOptions, Trainer


def _models(init: Path):
    from core.livemoments.load import load_checkpoint

    return load_checkpoint(init, device="cpu", dtype=torch.float32)


@pytest.fixture(scope="module")
def tiles(video_pairs: Path) -> list:
    pair_set = open_pair_set(video_pairs)
    return [tile_inputs(pair_set.load(r), 32, (8, 16)) for r in pair_set.records[:2]]


def test_inputs_and_velocity_match_the_pipeline(tiny_init: Path, tiles: list) -> None:
    from core.livemoments.model import TwoBranchVelocity
    from core.livemoments.pipeline import LiveMomentsPipeline, _to_model

    models = _models(tiny_init)
    flow = DISFlow()
    nets = TrainingNetworks(models, flow)
    pipeline = LiveMomentsPipeline(models, flow, flow)
    try:
        lq = [t.lq_up for t in tiles]
        z_train = nets.encode(lq)
        z_infer = pipeline._encode(_to_model(lq, models.device, models.vae_dtype))
        assert torch.equal(z_train, z_infer)
        flows = nets.flows(tiles)
        for f, t in zip(flows, tiles, strict=True):
            np.testing.assert_array_equal(f, pipeline._local_flow(t.ref_lq_up, t.lq_up))
        motion = nets.motion(flows)
        for a, b in zip(motion, pipeline._motion(flows), strict=True):
            assert torch.equal(a, b)
        z_ref = nets.encode([t.ref for t in tiles])
        z = torch.randn(z_train.shape, generator=torch.Generator().manual_seed(0))
        sigma = 0.1289
        with torch.no_grad():
            ours = nets.predict(z, torch.full((2,), sigma), z_ref, motion)
            lockstep = TwoBranchVelocity(models.transformer, models.transformer_ref,
                                         models.prompt_embeds, models.pooled_prompt_embeds)
            theirs = lockstep(z, sigma, z_ref, motion)
            lockstep.close()
            # Per-item t: item 1 alone at another σ gives what a batch of one gives.
            mixed = nets.predict(z, torch.tensor([sigma, 0.05]), z_ref, motion)
            single = nets.predict(z[1:], torch.tensor([0.05]), z_ref[1:], [m[1:] for m in motion])
        # Two whole passes vs block-by-block lockstep: the same operations on the same
        # tensors; float32 on one thread agrees to a few ulps of the O(1) outputs.
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)
        torch.testing.assert_close(mixed[0], ours[0], rtol=0, atol=1e-5)
        torch.testing.assert_close(mixed[1], single[0], rtol=0, atol=1e-5)
        assert (mixed[1] - ours[1]).abs().max() > 1e-3  # t really reaches the network
    finally:
        pipeline.close()
        nets.close()


def _grads(init: Path, tiles: list, checkpointing: bool) -> dict[str, torch.Tensor]:
    models = _models(init)
    trainer = Trainer(models, FitOptions(batch=2, grad_checkpointing=checkpointing),
                      DISFlow(), 32)
    nets = trainer.networks
    z_h = nets.encode([t.hq for t in tiles])
    z_l = nets.encode([t.lq_up for t in tiles])
    z_ref = nets.encode([t.ref for t in tiles])
    t = torch.tensor([0.03, 0.15])
    noise = torch.randn(z_h.shape, generator=torch.Generator().manual_seed(1))
    from core.livemoments.training.objective import bridge_loss, bridge_state, velocity_target

    pred = nets.predict(bridge_state(z_h, z_l, noise, t), t, z_ref, nets.motion(nets.flows(tiles)))
    bridge_loss(pred, velocity_target(z_h, z_l, noise, t)).backward()
    grads = {n: p.grad.clone() for n, p in trainer.parameters if p.grad is not None}
    trainer.close()
    return grads


def test_gradient_checkpointing_gives_the_same_gradients(tiny_init: Path, tiles: list) -> None:
    plain = _grads(tiny_init, tiles, False)
    recomputed = _grads(tiny_init, tiles, True)
    assert set(plain) == set(recomputed)
    # The ReferenceNet is trained through its K/V bank: its gradients must survive the
    # recomputation (a reentrant checkpoint would silently drop them).
    assert any(n.startswith("transformer_ref.") and g.abs().sum() > 0 for n, g in plain.items())
    for name, grad in plain.items():
        torch.testing.assert_close(recomputed[name], grad, rtol=1e-5, atol=1e-7, msg=name)


def test_lora_trains_adapters_and_publishes_merged_weights(
    tiny_init: Path, video_pairs: Path, tmp_path: Path
) -> None:
    pytest.importorskip("peft")
    from core.livemoments.training.publish import publish_checkpoint
    from core.livemoments.validate import validate_checkpoint

    models = _models(tiny_init)
    initial = {k: v.clone() for k, v in models.transformer.state_dict().items()}
    trainer = Trainer(models, FitOptions(batch=2, lr=1e-2, lora_rank=2), DISFlow(), 32)
    try:
        names = [n for n, _ in trainer.parameters]
        assert all(".lora_" in n or n.startswith("motion_encoder.") for n in names)
        merged = merged_state_dict(models.transformer)
        assert all(torch.equal(merged[k], initial[k]) for k in initial)  # B = 0 at the start
        pair_set = open_pair_set(video_pairs)
        pairs = [pair_set.load(r) for r in pair_set.records[:2]]
        for _ in range(3):
            trainer.step(pairs)
        merged = merged_state_dict(models.transformer)
        moved = {k for k in initial if not torch.equal(merged[k], initial[k])}
        assert moved and moved <= trained_keys(models.transformer)
        assert all(branch(k) == "image" for k in moved)
        report = validate_checkpoint(tiny_init)
        out = publish_checkpoint(tmp_path / "ck", models, report, {"test": True})
    finally:
        trainer.close()
    published = validate_checkpoint(out)
    assert published.ok, published.errors
    from safetensors.torch import load_file

    stored = load_file(str(out / "transformer" / "diffusion_pytorch_model.safetensors"))
    assert set(stored) == set(initial)  # plain layout: no adapter tensors
    for key in initial:
        assert torch.equal(stored[key], merged[key] if key in moved else initial[key]), key


def test_bf16_autocast_step_runs(tiny_init: Path, video_pairs: Path) -> None:
    models = _models(tiny_init)
    trainer = Trainer(models, FitOptions(batch=1, mixed_precision="bf16"), DISFlow(), 32)
    try:
        pair_set = open_pair_set(video_pairs)
        loss = trainer.step([pair_set.load(pair_set.records[0])])
        assert np.isfinite(loss) and loss > 0
        # The trained weights stay float32 (AdamW's updates would vanish in bf16).
        assert all(p.dtype == torch.float32 for _, p in trainer.parameters)
    finally:
        trainer.close()
