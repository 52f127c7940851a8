"""Strict validation of a checkpoint directory against the architecture, without tensor data.

Every tensor the networks expect must be present with its exact shape, and nothing else may be;
each problem names the tensor. The expected shapes come from building the networks on the meta
device from the checkpoint's own configs, and the actual ones from file headers (safetensors) or
a memory-mapped state dict (the motion encoder), so `lmd model check` on the 17 GB published
checkpoint is quick. `validate_checkpoint` reports and never raises; `load` refuses what it
reports.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.livemoments.config import MotionEncoderConfig
from core.livemoments.layout import (
    CONFIG_FILE,
    MOTION_FILE,
    POOLED_KEY,
    PROMPT_KEY,
    RAFT_FILE,
    RANDOM_MARKER,
    RANDOM_METADATA_KEY,
    SCHEDULER_FILE,
    TRANSFORMER_DIR,
    TRANSFORMER_REF_DIR,
    VAE_DIR,
    WEIGHTS_FILE,
    CheckpointError,
)
from core.livemoments.params import max_tile as tile_limit
from core.livemoments.read import (
    load_motion_state,
    load_prompt,
    read_config,
    read_safetensors_header,
)

_MAX_NAMED = 8


@dataclass(slots=True)
class CheckpointReport:
    """What `validate_checkpoint` found: one line per component, and every problem."""

    path: Path
    found: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    random_weights: bool = False
    transformer_config: dict[str, Any] = field(default_factory=dict)
    vae_config: dict[str, Any] = field(default_factory=dict)
    motion_config: MotionEncoderConfig | None = None
    prompt_source: str = ""
    raft_weights: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def max_tile(self) -> int | None:
        """The largest tile (px) this checkpoint's transformer takes (None: no limit)."""
        if not self.transformer_config or not self.vae_config:
            return None
        return tile_limit(self.transformer_config, self.vae_config)


def expected_shapes(module: nn.Module) -> dict[str, tuple[int, ...]]:
    """Every tensor of a module's state dict and its shape (works on the meta device)."""
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def named(names: Iterable[str]) -> str:
    """A sorted list of names for a message, cut after a few."""
    items = sorted(names)
    shown = ", ".join(items[:_MAX_NAMED])
    return shown + (f" (+{len(items) - _MAX_NAMED} more)" if len(items) > _MAX_NAMED else "")


def compare_shapes(
    what: str, expected: Mapping[str, tuple[int, ...]], actual: Mapping[str, tuple[int, ...]]
) -> list[str]:
    """Every missing, unexpected or mis-shaped tensor, named."""
    errors = []
    missing = set(expected) - set(actual)
    unexpected = set(actual) - set(expected)
    if missing:
        errors.append(f"{what}: missing tensors: {named(missing)}")
    if unexpected:
        errors.append(f"{what}: unexpected tensors: {named(unexpected)}")
    for name in sorted(set(expected) & set(actual)):
        if tuple(expected[name]) != tuple(actual[name]):
            errors.append(
                f"{what}: tensor {name} has shape {list(actual[name])}, "
                f"expected {list(expected[name])}"
            )
    return errors


def motion_config_from_shapes(shapes: Mapping[str, tuple[int, ...]]) -> MotionEncoderConfig:
    """The published file has no config: read the widths off the convolution shapes.

    Each stride-2 convolution's width is its bias's length, or its weight's first dimension
    when the bias is damaged; a width neither gives is an error naming both tensors. The input
    is always the 2-channel flow. Every other shape is then checked against the encoder these
    widths describe (`compare_shapes`), so a damaged tensor is named with the shape expected.
    """
    hidden = []
    for i in (0, 2, 4, 6):
        weight, bias = f"blocks.0.{i}.weight", f"blocks.0.{i}.bias"
        missing = [name for name in (weight, bias) if name not in shapes]
        if missing:
            raise CheckpointError(f"{MOTION_FILE}: missing tensor {missing[0]}")
        w, b = tuple(shapes[weight]), tuple(shapes[bias])
        if len(b) == 1 and b[0] > 0:
            hidden.append(int(b[0]))
        elif len(w) == 4 and w[0] > 0:
            hidden.append(int(w[0]))
        else:
            raise CheckpointError(
                f"{MOTION_FILE}: tensor {weight} has shape {list(w)} and {bias} {list(b)}; "
                "expected a convolution [width, inputs, 3, 3] and a bias [width]"
            )
    n_pointwise = 0
    while f"blocks.{n_pointwise + 1}.0.weight" in shapes:
        n_pointwise += 1
    return MotionEncoderConfig(in_channels=2, hidden=tuple(hidden), n_pointwise=n_pointwise)  # type: ignore[arg-type]


def meta_transformer(config: Mapping[str, Any], restoration: bool) -> nn.Module:
    """The transformer a config describes, on the meta device (shapes only, no memory)."""
    from core.livemoments.model import build_transformer

    with torch.device("meta"):
        return build_transformer(config, restoration=restoration)


def meta_vae(config: Mapping[str, Any]) -> nn.Module:
    from diffusers import AutoencoderKL

    with torch.device("meta"):
        return AutoencoderKL.from_config(dict(config))


def meta_motion(config: MotionEncoderConfig) -> nn.Module:
    from core.livemoments.motion_encoder import MotionEncoder

    with torch.device("meta"):
        return MotionEncoder(config)


def _numel(shape: Iterable[int]) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def _check_transformer(report: CheckpointReport, sub: str, restoration: bool) -> dict[str, Any]:
    folder = report.path / sub
    cfg_path, weights = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    if not cfg_path.is_file() or not weights.is_file():
        report.errors.append(f"{sub}/: needs {CONFIG_FILE} and {WEIGHTS_FILE}")
        return {}
    config = read_config(cfg_path)
    for key in ("qk_norm", "dual_attention_layers"):
        if config.get(key):
            # The K/V capture and the restoration processor use raw projections, which is
            # right only without qk-norm and with joint attention only (SD3.0, design §7).
            raise CheckpointError(
                f"{sub}/{CONFIG_FILE}: {key} = {config[key]!r} is not supported "
                "(LiveMoments is built on SD3-medium, which has neither)"
            )
    header = read_safetensors_header(weights)
    expected = expected_shapes(meta_transformer(config, restoration))
    report.errors += compare_shapes(f"{sub}/{WEIGHTS_FILE}", expected, header.shapes)
    if header.metadata.get(RANDOM_METADATA_KEY) == "true":
        report.random_weights = True
    params = sum(_numel(s) for s in header.shapes.values())
    report.found[sub] = (
        f"{config.get('num_layers')} layers × {config.get('num_attention_heads')} heads × "
        f"{config.get('attention_head_dim')}, {len(header.shapes)} tensors, "
        f"{params / 1e6:.2f} M values, {weights.stat().st_size / 1e9:.2f} GB"
    )
    return config


def validate_checkpoint(directory: Path | str) -> CheckpointReport:
    """Check a checkpoint directory against the architecture without loading tensor data.

    Each component is checked on its own, so one damaged file does not hide the others' state.
    """
    report = CheckpointReport(path=Path(directory))
    if not report.path.is_dir():
        report.errors.append(f"{report.path}: not a directory")
        return report
    main_cfg = _guarded(report, _check_transformer, TRANSFORMER_DIR, True) or {}
    ref_cfg = _guarded(report, _check_transformer, TRANSFORMER_REF_DIR, False) or {}
    report.transformer_config = main_cfg
    if main_cfg and ref_cfg and main_cfg != ref_cfg:
        diff = sorted(k for k in set(main_cfg) | set(ref_cfg) if main_cfg.get(k) != ref_cfg.get(k))
        report.errors.append(
            f"transformer and transformer_ref configs differ in: {', '.join(diff)}"
        )
    for check in (_check_motion, _check_vae, _check_prompt):
        _guarded(report, check, main_cfg)
    _guarded(report, _check_extras)
    return report


def _guarded(report: CheckpointReport, check: Callable[..., Any], *args: Any) -> Any:
    """Run one component check; what it raises becomes one of the report's errors."""
    try:
        return check(report, *args)
    except CheckpointError as exc:
        report.errors.append(str(exc))
    except (OSError, ValueError, KeyError, TypeError, IndexError, ArithmeticError) as exc:
        # A config value of the wrong type or size that building the networks tripped over.
        report.errors.append(f"{report.path}: {type(exc).__name__}: {exc}")
    return None


def _check_motion(report: CheckpointReport, main_cfg: Mapping[str, Any]) -> None:
    motion_path = report.path / MOTION_FILE
    if not motion_path.is_file():
        report.errors.append(f"{MOTION_FILE}: missing")
        return
    state = load_motion_state(motion_path)
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    mcfg = motion_config_from_shapes(shapes)
    report.motion_config = mcfg
    report.errors += compare_shapes(MOTION_FILE, expected_shapes(meta_motion(mcfg)), shapes)
    report.found["motion_encoder"] = (
        f"widths {list(mcfg.hidden)}, {mcfg.n_pointwise} pointwise blocks, "
        f"{sum(v.numel() for v in state.values()) / 1e6:.2f} M params"
    )
    if main_cfg:
        inner = main_cfg["num_attention_heads"] * main_cfg["attention_head_dim"]
        if mcfg.embed_dim != inner:
            report.errors.append(
                f"{MOTION_FILE}: embeds {mcfg.embed_dim} channels, transformer needs {inner}"
            )
        if mcfg.num_embeddings != main_cfg["num_layers"]:
            report.errors.append(
                f"{MOTION_FILE}: gives {mcfg.num_embeddings} embeddings for "
                f"{main_cfg['num_layers']} transformer blocks"
            )


def _check_vae(report: CheckpointReport, main_cfg: Mapping[str, Any]) -> None:
    folder = report.path / VAE_DIR
    vae_cfg_path, vae_weights = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    if not (vae_cfg_path.is_file() and vae_weights.is_file()):
        report.errors.append(f"{VAE_DIR}/: needs {CONFIG_FILE} and {WEIGHTS_FILE}")
        return
    vcfg = read_config(vae_cfg_path)
    report.vae_config = vcfg
    shapes = read_safetensors_header(vae_weights).shapes
    report.errors += compare_shapes(
        f"{VAE_DIR}/{WEIGHTS_FILE}", expected_shapes(meta_vae(vcfg)), shapes
    )
    factor = 2 ** (len(vcfg.get("block_out_channels", [])) - 1)
    report.found["vae"] = (
        f"{factor}× downsampling, {vcfg.get('latent_channels')} latent channels, "
        f"shift {vcfg.get('shift_factor')}, scale {vcfg.get('scaling_factor')}"
    )
    if main_cfg and vcfg.get("latent_channels") != main_cfg.get("in_channels"):
        report.errors.append(
            f"vae: {vcfg.get('latent_channels')} latent channels, transformer takes "
            f"{main_cfg.get('in_channels')}"
        )
    if vcfg.get("shift_factor") is None or vcfg.get("scaling_factor") is None:
        report.errors.append("vae: config lacks shift_factor/scaling_factor (not an SD3 VAE)")


def _check_prompt(report: CheckpointReport, main_cfg: Mapping[str, Any]) -> None:
    try:
        prompt, pooled, source = load_prompt(report.path)
    except CheckpointError as exc:
        report.errors.append(str(exc))
        return
    report.prompt_source = source
    report.found["prompt_embeds"] = f"{source}: {list(prompt.shape)} and {list(pooled.shape)}"
    if main_cfg:
        if prompt.shape[-1] != main_cfg["joint_attention_dim"]:
            report.errors.append(
                f"{PROMPT_KEY}: width {prompt.shape[-1]}, transformer needs "
                f"{main_cfg['joint_attention_dim']}"
            )
        if pooled.shape[-1] != main_cfg["pooled_projection_dim"]:
            report.errors.append(
                f"{POOLED_KEY}: width {pooled.shape[-1]}, transformer needs "
                f"{main_cfg['pooled_projection_dim']}"
            )
    if not torch.isfinite(prompt).all() or not torch.isfinite(pooled).all():
        report.errors.append("prompt embeddings contain NaN or infinity")


def _check_extras(report: CheckpointReport) -> None:
    root = report.path
    raft = root / RAFT_FILE
    if raft.is_file():
        report.raft_weights = raft
        report.found["raft"] = f"{RAFT_FILE} ({raft.stat().st_size / 1e6:.1f} MB)"
    else:
        report.warnings.append(
            f"{RAFT_FILE} absent: motion flow falls back to DIS (a distribution shift for the "
            "released motion encoder)"
        )
    if (root / SCHEDULER_FILE).is_file():
        report.found["scheduler"] = f"{SCHEDULER_FILE} (unused: the σ schedule is fixed)"
    if (root / RANDOM_MARKER).is_file():
        report.random_weights = True
    if report.random_weights:
        report.warnings.append("RANDOM WEIGHTS: this checkpoint is for tests and benchmarks only")
