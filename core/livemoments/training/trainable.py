"""Which weights training changes: the image branches of both transformers and the motion encoder.

LiveMoments fine-tunes only the image branches of the RestorationNet and the ReferenceNet (and
trains the motion encoder); the VAE, the text branch and the timestep embedding stay as SD3 made
them, and the empty-prompt embeddings are fixed tensors. In an SD3 (MM-DiT) transformer:

* image branch: the patch embedding (`pos_embed.proj`), in every block the image stream
  (`norm1`, `attn.to_q/to_k/to_v/to_out`, `ff`) and the RestorationNet's `point_proj`, and the
  output head (`norm_out`, `proj_out`);
* text branch: `context_embedder`, the pooled-text embedder, and in every block the context
  stream (`norm1_context`, `attn.add_q/k/v_proj`, `to_add_out`, `ff_context`);
* shared conditioning: the timestep embedder (neither branch; frozen).

Full fine-tuning sets `requires_grad` on exactly the image-branch tensors. The LoRA variant (for
24 GB cards) freezes every transformer weight and adds rank-R adapters (peft) to the image
branch's linear layers instead; `merged_state_dict` folds them back in, so the published
checkpoint has the plain layout and inference needs no peft. The motion encoder is trained whole
in both variants (66 M parameters).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import torch
from torch import nn

_TEXT = re.compile(
    r"(^context_embedder\.|^time_text_embed\.text_embedder\.|\.norm1_context\.|"
    r"\.attn\.(add_q_proj|add_k_proj|add_v_proj|to_add_out|norm_added_q|norm_added_k)\.|"
    r"\.ff_context\.)"
)
_TIMESTEP = re.compile(r"^time_text_embed\.timestep_embedder\.")
_IMAGE = re.compile(
    r"(^pos_embed\.proj\.|^norm_out\.|^proj_out\.|"
    r"^transformer_blocks\.\d+\.(norm1\.|attn\.(to_q|to_k|to_v|to_out)\.|"
    r"attn\.processor\.point_proj\.|ff\.))"
)

LORA_TARGETS = (
    r"^transformer_blocks\.\d+\.(norm1\.linear|attn\.(to_q|to_k|to_v|to_out\.0)"
    r"|attn\.processor\.point_proj|ff\.net\.0\.proj|ff\.net\.2)$|^(norm_out\.linear|proj_out)$"
)
"""The image branch's linear layers, as a peft `target_modules` regex (full match on names)."""

LORA_ADAPTER = "default"


def branch(name: str) -> str:
    """"image", "text", "timestep" or "fixed" (the sincos position table, a buffer) for a
    transformer state-dict name (LoRA names included).

    A name the rules do not know is an error rather than a guess: a new diffusers layer must
    be classified on purpose, not trained or frozen by accident.
    """
    plain = name.replace(".base_layer.", ".")
    if _TEXT.search(plain):
        return "text"
    if _TIMESTEP.search(plain):
        return "timestep"
    if plain == "pos_embed.pos_embed":
        return "fixed"
    if _IMAGE.search(plain) or ".lora_" in name:
        return "image"
    raise ValueError(f"transformer parameter {name!r} is in no known branch")


def freeze(module: nn.Module) -> None:
    module.requires_grad_(False)


def select_image_branch(transformer: nn.Module) -> None:
    """Full fine-tuning: gradients for the image branch only."""
    for name, param in transformer.named_parameters():
        param.requires_grad_(branch(name) == "image")


def peft_available() -> bool:
    try:
        import peft  # noqa: F401
    except ImportError:
        return False
    return True


def add_lora(transformer: nn.Module, rank: int) -> None:
    """Rank-`rank` adapters on the image branch's linear layers; everything else frozen.

    Adapters start as zero updates (peft's default init: B = 0), so the adapted network equals
    the initial one until the first step. Adapter weights are float32 whatever the base dtype.
    """
    if rank < 1:
        raise ValueError(f"LoRA rank must be at least 1, got {rank}")
    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError:
        raise RuntimeError(
            "the LoRA variant needs peft (pip install 'lmd[train]' or pip install peft)"
        ) from None
    config = LoraConfig(
        r=rank, lora_alpha=rank, lora_dropout=0.0, target_modules=LORA_TARGETS, bias="none"
    )
    transformer.requires_grad_(False)
    inject_adapter_in_model(config, transformer, adapter_name=LORA_ADAPTER)
    for name, param in transformer.named_parameters():
        is_adapter = ".lora_" in name
        if is_adapter and param.dtype != torch.float32:
            param.data = param.data.float()
        param.requires_grad_(is_adapter)


def trainable_parameters(modules: dict[str, nn.Module]) -> Iterator[tuple[str, nn.Parameter]]:
    """("<module>.<name>", parameter) for every parameter with a gradient, in a fixed order
    (module order as given, then registration order): the order optimizer states rely on."""
    for prefix, module in modules.items():
        for name, param in module.named_parameters():
            if param.requires_grad:
                yield f"{prefix}.{name}", param


def _lora_layers(module: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    for name, sub in module.named_modules():
        if all(hasattr(sub, a) for a in ("lora_A", "get_delta_weight", "base_layer")):
            yield name, sub


def lora_deltas(module: nn.Module) -> dict[str, torch.Tensor]:
    """{plain weight key: the adapter's update B·A·scale, float32} for every LoRA layer."""
    out = {}
    with torch.no_grad():
        for name, layer in _lora_layers(module):
            if LORA_ADAPTER in layer.lora_A:
                out[f"{name}.weight"] = layer.get_delta_weight(LORA_ADAPTER).float()
    return out


def merged_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict without LoRA: adapter updates added to their base weights (in float32,
    then the base's dtype), keys as the plain network has them. A module without adapters
    gives its own state dict."""
    out = {
        key.replace(".base_layer.", "."): value
        for key, value in module.state_dict().items()
        if ".lora_" not in key
    }
    for key, delta in lora_deltas(module).items():
        base = out[key]
        out[key] = (base.float() + delta).to(base.dtype)
    return out


def trained_keys(module: nn.Module) -> set[str]:
    """Plain state-dict keys (as `merged_state_dict` names them) that training can change:
    parameters with a gradient, and the weight of every layer carrying a LoRA adapter."""
    keys = {
        name.replace(".base_layer.", ".")
        for name, param in module.named_parameters()
        if param.requires_grad and ".lora_" not in name
    }
    keys.update(f"{name}.weight" for name, _layer in _lora_layers(module))
    return keys


class StateDictView(nn.Module):
    """A module whose `state_dict()` is a given mapping: hands merged weights to writers that
    take a module (`core.livemoments.write`)."""

    def __init__(self, state: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self._state = state

    def state_dict(self, *args: object, **kwargs: object) -> dict[str, torch.Tensor]:  # type: ignore[override]
        return self._state
