"""The two-branch LiveMoments transformer, on stock diffusers SD3 modules.

* The ReferenceNet is a stock `SD3Transformer2DModel`. Forward hooks on every block's `to_k`,
  `to_v`, `add_k_proj` and `add_v_proj` copy the raw projections into a bank (valid because
  SD3-medium has no qk-norm); the hooks are registered once per net and removed on `close()`,
  unlike the official code, which adds a fresh set for every tile.
* The RestorationNet is a stock `SD3Transformer2DModel` whose attention processors are replaced by
  `RefMotionJointAttnProcessor`, an `nn.Module`, so its `point_proj` lands in the state dict at the
  published key `transformer_blocks.{i}.attn.processor.point_proj.weight`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import SD3Transformer2DModel
from torch import nn

KV_PROJECTIONS = ("to_k", "to_v", "add_k_proj", "add_v_proj")


def block_prefix(index: int) -> str:
    return f"transformer_blocks.{index}.attn."


class RefMotionJointAttnProcessor(nn.Module):
    """Joint attention that also attends over the reference branch's keys and values.

    K = [to_k(x); add_k_proj(c); K_ref + point_proj(LN(E_i)); K_ref_ctx] and
    V = [to_v(x); add_v_proj(c); V_ref; V_ref_ctx]; Q is the stock one. Motion is added in key
    space to the reference image keys only, so with a zero `point_proj` (its initial value) and a
    reference branch equal to the main one, every key/value pair is duplicated and attention is
    unchanged: the property the equivalence test relies on.
    """

    def __init__(self, embed_dim: int, hidden_size: int, index: int) -> None:
        super().__init__()
        self.index = index
        self.point_norm = nn.LayerNorm(embed_dim, elementwise_affine=False)
        self.point_proj = nn.Linear(embed_dim, hidden_size, bias=False)
        nn.init.zeros_(self.point_proj.weight)

    # diffusers filters the joint_attention_kwargs by this exact signature, so the extra
    # arguments must be named (a bare **kwargs would be dropped with a warning).
    def __call__(  # type: ignore[override]
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        ref_kv: Mapping[str, torch.Tensor] | None = None,
        motion: Sequence[torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None] | torch.Tensor:
        batch = hidden_states.shape[0]
        n_image = hidden_states.shape[1]
        q = [attn.to_q(hidden_states)]
        k = [attn.to_k(hidden_states)]
        v = [attn.to_v(hidden_states)]
        if encoder_hidden_states is not None:
            q.append(attn.add_q_proj(encoder_hidden_states))
            k.append(attn.add_k_proj(encoder_hidden_states))
            v.append(attn.add_v_proj(encoder_hidden_states))
        if ref_kv is not None:
            p = block_prefix(self.index)
            k_ref = ref_kv[p + "to_k"]
            if motion is not None:
                e = motion[self.index].to(k_ref.dtype)
                k_ref = k_ref + self.point_proj(self.point_norm(e))
            k += [k_ref, ref_kv[p + "add_k_proj"]]
            v += [ref_kv[p + "to_v"], ref_kv[p + "add_v_proj"]]
        query, key, value = torch.cat(q, 1), torch.cat(k, 1), torch.cat(v, 1)
        head_dim = key.shape[-1] // attn.heads

        def heads(x: torch.Tensor) -> torch.Tensor:
            return x.view(batch, -1, attn.heads, head_dim).transpose(1, 2)

        out = F.scaled_dot_product_attention(heads(query), heads(key), heads(value))
        out = out.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim).to(query.dtype)
        image, context = out[:, :n_image], out[:, n_image:]
        image = attn.to_out[1](attn.to_out[0](image))
        if encoder_hidden_states is None:
            return image
        if not attn.context_pre_only:
            context = attn.to_add_out(context)
        return image, context


class ReferenceKVCapture:
    """Copies the ReferenceNet's raw K/V projections into `bank` on every forward pass.

    One instance per ReferenceNet for its whole life: hooks are registered here, once, and
    removed by `close()` (also used as a context manager).
    """

    def __init__(self, reference_net: nn.Module) -> None:
        self.bank: dict[str, torch.Tensor] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        for name, module in reference_net.named_modules():
            head, _, leaf = name.rpartition(".")
            if leaf in KV_PROJECTIONS and head.endswith("attn"):
                self._handles.append(module.register_forward_hook(self._store(name)))
        if not self._handles:
            raise ValueError("the reference net has no attention K/V projections to capture")

    def _store(self, name: str) -> Any:
        def hook(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
            self.bank[name] = output

        return hook

    @property
    def hooked(self) -> int:
        return len(self._handles)

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.bank.clear()

    def __enter__(self) -> ReferenceKVCapture:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def install_restoration_processors(net: SD3Transformer2DModel) -> None:
    """Turn a stock SD3 transformer into the RestorationNet (zero-initialised point_proj)."""
    inner = net.config.num_attention_heads * net.config.attention_head_dim
    processors = {
        f"transformer_blocks.{i}.attn.processor": RefMotionJointAttnProcessor(inner, inner, i)
        for i in range(net.config.num_layers)
    }
    net.set_attn_processor(processors)


def compile_blocks(net: SD3Transformer2DModel, mode: str | None = None) -> None:
    """Regional torch.compile: each transformer block in place (the lockstep loop calls the
    blocks directly, so compiling the whole model's forward would never be used)."""
    for block in net.transformer_blocks:
        block.compile(mode=mode, dynamic=False)


def build_transformer(config: Mapping[str, Any], restoration: bool) -> SD3Transformer2DModel:
    """A randomly initialised SD3 transformer (the RestorationNet when `restoration`)."""
    net = SD3Transformer2DModel.from_config(dict(config))
    if restoration:
        install_restoration_processors(net)
    return net


class TwoBranchVelocity:
    """The velocity field of the bridge: ReferenceNet pass, then RestorationNet pass, per step.

    The reference latent runs through the ReferenceNet with the same t (its K/V depend on t via
    adaLN), filling the bank the RestorationNet reads. By default the two nets run in lockstep,
    block by block, so the bank holds one block's K/V instead of all 24 (≈1.3 GB per 1024² tile
    in bf16 otherwise); `lockstep=False` runs two whole forward passes, as the official code
    does. Both give the same numbers.
    """

    def __init__(
        self,
        transformer: SD3Transformer2DModel,
        transformer_ref: SD3Transformer2DModel,
        prompt_embeds: torch.Tensor,
        pooled_prompt_embeds: torch.Tensor,
        lockstep: bool = True,
    ) -> None:
        self.transformer = transformer
        self.transformer_ref = transformer_ref
        self.capture = ReferenceKVCapture(transformer_ref)
        self.prompt_embeds = prompt_embeds
        self.pooled = pooled_prompt_embeds
        self.lockstep = lockstep

    def __call__(
        self,
        z: torch.Tensor,
        sigma: float,
        ref_latent: torch.Tensor,
        motion: Sequence[torch.Tensor] | None,
    ) -> torch.Tensor:
        batch = z.shape[0]
        ctx = self.prompt_embeds.expand(batch, -1, -1)
        pooled = self.pooled.expand(batch, -1)
        # Timesteps stay float32 whatever the nets' precision, as in diffusers' SD3 pipeline
        # (the embedding casts after the sinusoids): in bf16, 1000·σ = 200.17 would become 200.
        t = torch.full((batch,), 1000.0 * sigma, device=z.device, dtype=torch.float32)
        self.capture.bank.clear()
        try:
            if self.lockstep:
                return self._lockstep(z, t, ref_latent, motion, ctx, pooled)
            self.transformer_ref(
                hidden_states=ref_latent,
                encoder_hidden_states=ctx,
                pooled_projections=pooled,
                timestep=t,
                return_dict=False,
            )
            return self.transformer(
                hidden_states=z,
                encoder_hidden_states=ctx,
                pooled_projections=pooled,
                timestep=t,
                joint_attention_kwargs={"ref_kv": self.capture.bank, "motion": motion},
                return_dict=False,
            )[0]
        finally:
            self.capture.bank.clear()

    def _lockstep(
        self,
        z: torch.Tensor,
        t: torch.Tensor,
        ref_latent: torch.Tensor,
        motion: Sequence[torch.Tensor] | None,
        ctx: torch.Tensor,
        pooled: torch.Tensor,
    ) -> torch.Tensor:
        """`SD3Transformer2DModel.forward` for both nets at once, block by block."""
        main, ref = self.transformer, self.transformer_ref
        bank = self.capture.bank
        height, width = z.shape[-2:]
        h = main.pos_embed(z).contiguous()
        h_ref = ref.pos_embed(ref_latent).contiguous()
        temb = main.time_text_embed(t, pooled)
        temb_ref = ref.time_text_embed(t, pooled)
        c = main.context_embedder(ctx)
        c_ref = ref.context_embedder(ctx)
        kwargs = {"ref_kv": bank, "motion": motion}
        blocks = zip(main.transformer_blocks, ref.transformer_blocks, strict=True)
        for index, (block, ref_block) in enumerate(blocks):
            c_ref, h_ref = ref_block(
                hidden_states=h_ref, encoder_hidden_states=c_ref, temb=temb_ref
            )
            c, h = block(
                hidden_states=h, encoder_hidden_states=c, temb=temb, joint_attention_kwargs=kwargs
            )
            prefix = block_prefix(index)
            for name in KV_PROJECTIONS:
                bank.pop(prefix + name, None)
        h = main.proj_out(main.norm_out(h, temb))
        p = main.config.patch_size
        h = h.reshape(h.shape[0], height // p, width // p, p, p, main.out_channels)
        h = torch.einsum("nhwpqc->nchpwq", h)
        return h.reshape(h.shape[0], main.out_channels, height, width)

    def close(self) -> None:
        self.capture.close()
