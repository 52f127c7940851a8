"""LiveMoments checkpoint directories: layout, strict validation and loading, random init, digest.

Layout (the published HF repo plus the SD3 files lmd needs, see the design page §2):

    <dir>/transformer/{config.json, diffusion_pytorch_model.safetensors}      RestorationNet
    <dir>/transformer_ref/{config.json, diffusion_pytorch_model.safetensors}  ReferenceNet
    <dir>/motion_encoder.pt                    torch.save(state_dict), widths read from shapes
    <dir>/vae/{config.json, diffusion_pytorch_model.safetensors}              SD3 VAE
    <dir>/prompt_embeds.safetensors            empty-prompt embeddings (or the fork's two .pt)
    <dir>/scheduler/scheduler_config.json      optional, unused (the σ schedule is hard-coded)
    <dir>/raft/raft_large_C_T_SKHT_V1-0b8c9e55.pth   optional RAFT-Sintel weights

Loading is strict: every tensor the architecture expects must be present with its exact shape,
and nothing else may be; an error names the offending tensors. Validation reads only configs and
file headers (safetensors headers, a memory-mapped motion encoder), so `lmd model check` on the
17 GB published checkpoint is quick.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.api import RestoreError
from core.livemoments.config import MotionEncoderConfig, Size, sizes

TRANSFORMER_DIR = "transformer"
TRANSFORMER_REF_DIR = "transformer_ref"
VAE_DIR = "vae"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "diffusion_pytorch_model.safetensors"
MOTION_FILE = "motion_encoder.pt"
PROMPT_FILE = "prompt_embeds.safetensors"
PROMPT_PT_FILES = ("prompt_embeds.pt", "pooled_prompt_embeds.pt")
RAFT_FILE = "raft/raft_large_C_T_SKHT_V1-0b8c9e55.pth"
SCHEDULER_FILE = "scheduler/scheduler_config.json"
RANDOM_MARKER = "RANDOM_WEIGHTS.txt"
RANDOM_METADATA_KEY = "lmd.random_weights"

PROMPT_KEY = "prompt_embeds"
POOLED_KEY = "pooled_prompt_embeds"

_MAX_NAMED = 8


class CheckpointError(RestoreError):
    """The checkpoint directory is incomplete or does not match the architecture."""


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


@dataclass(slots=True)
class LiveMomentsModels:
    """The loaded networks and tensors, ready for the pipeline."""

    transformer: nn.Module
    transformer_ref: nn.Module
    motion_encoder: nn.Module
    vae: nn.Module
    prompt_embeds: torch.Tensor
    pooled_prompt_embeds: torch.Tensor
    raft_weights: Path | None
    random_weights: bool
    digest: str
    device: torch.device
    dtype: torch.dtype
    vae_dtype: torch.dtype


# --------------------------------------------------------------------------- reading configs


def _read_config(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable config ({exc})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: not a JSON object")
    return {k: v for k, v in data.items() if not k.startswith("_")}


def _safetensors_header(path: Path) -> tuple[dict[str, Any], int]:
    """The parsed header of a safetensors file and the byte offset where its data starts."""
    with path.open("rb") as fh:
        raw = fh.read(8)
        if len(raw) != 8:
            raise CheckpointError(f"{path}: not a safetensors file (too short)")
        (length,) = struct.unpack("<Q", raw)
        if length > 100_000_000:
            raise CheckpointError(f"{path}: not a safetensors file (header length {length})")
        header = json.loads(fh.read(length))
    return header, 8 + length


def _header_shapes(path: Path) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """Tensor shapes and metadata from the header; a file cut short (an interrupted copy or
    download) is an error here, since the header alone would look complete."""
    header, start = _safetensors_header(path)
    metadata = header.pop("__metadata__", None) or {}
    data_end = max((int(v["data_offsets"][1]) for v in header.values()), default=0)
    size = path.stat().st_size
    if size != start + data_end:
        raise CheckpointError(
            f"{path}: {size} bytes, but its header describes {start + data_end} (truncated?)"
        )
    return {k: tuple(v["shape"]) for k, v in header.items()}, metadata


def _expected_shapes(module: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def _named(names: Iterable[str]) -> str:
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
        errors.append(f"{what}: missing tensors: {_named(missing)}")
    if unexpected:
        errors.append(f"{what}: unexpected tensors: {_named(unexpected)}")
    for name in sorted(set(expected) & set(actual)):
        if tuple(expected[name]) != tuple(actual[name]):
            errors.append(
                f"{what}: tensor {name} has shape {list(actual[name])}, "
                f"expected {list(expected[name])}"
            )
    return errors


def motion_config_from_shapes(shapes: Mapping[str, tuple[int, ...]]) -> MotionEncoderConfig:
    """The published file has no config: read the widths off the convolution shapes."""
    try:
        convs = [shapes[f"blocks.0.{i}.weight"] for i in (0, 2, 4, 6)]
    except KeyError as exc:
        raise CheckpointError(f"{MOTION_FILE}: missing tensor {exc.args[0]}") from None
    n_pointwise = 0
    while f"blocks.{n_pointwise + 1}.0.weight" in shapes:
        n_pointwise += 1
    hidden = tuple(int(s[0]) for s in convs)
    return MotionEncoderConfig(in_channels=int(convs[0][1]), hidden=hidden, n_pointwise=n_pointwise)  # type: ignore[arg-type]


def _meta_transformer(config: Mapping[str, Any], restoration: bool) -> nn.Module:
    from core.livemoments.model import build_transformer

    with torch.device("meta"):
        return build_transformer(config, restoration=restoration)


def _meta_vae(config: Mapping[str, Any]) -> nn.Module:
    from diffusers import AutoencoderKL

    with torch.device("meta"):
        return AutoencoderKL.from_config(dict(config))


def _meta_motion(config: MotionEncoderConfig) -> nn.Module:
    from core.livemoments.motion_encoder import MotionEncoder

    with torch.device("meta"):
        return MotionEncoder(config)


def _load_motion_state(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: cannot read the motion encoder ({exc})") from None
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise CheckpointError(f"{path}: expected a state dict of tensors")
    return {str(k).removeprefix("module."): v for k, v in state.items()}


def _load_tensor_pt(path: Path) -> torch.Tensor:
    """One tensor saved with `torch.save` (the fork's prompt files), or a CheckpointError."""
    try:
        value = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling raises many types; all mean "not this file"
        raise CheckpointError(f"{path}: cannot read ({exc})") from None
    if not isinstance(value, torch.Tensor):
        raise CheckpointError(f"{path}: expected one tensor, found {type(value).__name__}")
    return value


def _load_prompt(directory: Path) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Empty-prompt embeddings as [1, L, D] and [1, P], from either accepted layout."""
    st = directory / PROMPT_FILE
    if st.is_file():
        from safetensors.torch import load_file

        try:
            tensors = load_file(str(st))
        except Exception as exc:  # safetensors raises its own error type for a bad header
            raise CheckpointError(f"{st}: cannot read the prompt embeddings ({exc})") from None
        if PROMPT_KEY not in tensors or POOLED_KEY not in tensors:
            raise CheckpointError(f"{st}: needs tensors {PROMPT_KEY!r} and {POOLED_KEY!r}")
        prompt, pooled, source = tensors[PROMPT_KEY], tensors[POOLED_KEY], PROMPT_FILE
    elif all((directory / name).is_file() for name in PROMPT_PT_FILES):
        prompt, pooled = (_load_tensor_pt(directory / name) for name in PROMPT_PT_FILES)
        source = " + ".join(PROMPT_PT_FILES)
    else:
        raise CheckpointError(
            f"{directory}: no empty-prompt embeddings ({PROMPT_FILE} or "
            f"{' + '.join(PROMPT_PT_FILES)}); create them once with `lmd model embed-prompt`"
        )
    if prompt.dim() == 2:
        prompt = prompt[None]
    if pooled.dim() == 1:
        pooled = pooled[None]
    if prompt.dim() != 3 or pooled.dim() != 2 or prompt.shape[0] != 1 or pooled.shape[0] != 1:
        raise CheckpointError(
            f"{directory}: prompt embeddings must be [1, L, D] and [1, P], got "
            f"{list(prompt.shape)} and {list(pooled.shape)}"
        )
    return prompt, pooled, source


# --------------------------------------------------------------------------- validation


def _check_transformer(report: CheckpointReport, sub: str, restoration: bool) -> dict[str, Any]:
    folder = report.path / sub
    cfg_path, weights = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    if not cfg_path.is_file() or not weights.is_file():
        report.errors.append(f"{sub}/: needs {CONFIG_FILE} and {WEIGHTS_FILE}")
        return {}
    config = _read_config(cfg_path)
    for key in ("qk_norm", "dual_attention_layers"):
        if config.get(key):
            # The K/V capture and the restoration processor use raw projections, which is
            # right only without qk-norm and with joint attention only (SD3.0, design §7).
            raise CheckpointError(
                f"{sub}/{CONFIG_FILE}: {key} = {config[key]!r} is not supported "
                "(LiveMoments is built on SD3-medium, which has neither)"
            )
    shapes, metadata = _header_shapes(weights)
    expected = _expected_shapes(_meta_transformer(config, restoration))
    report.errors += compare_shapes(f"{sub}/{WEIGHTS_FILE}", expected, shapes)
    if metadata.get(RANDOM_METADATA_KEY) == "true":
        report.random_weights = True
    params = sum(_numel(s) for s in shapes.values())
    report.found[sub] = (
        f"{config.get('num_layers')} layers × {config.get('num_attention_heads')} heads × "
        f"{config.get('attention_head_dim')}, {len(shapes)} tensors, {params / 1e6:.2f} M values, "
        f"{weights.stat().st_size / 1e9:.2f} GB"
    )
    return config


def _numel(shape: Iterable[int]) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def validate_checkpoint(directory: Path | str) -> CheckpointReport:
    """Check a checkpoint directory against the architecture without loading tensor data."""
    report = CheckpointReport(path=Path(directory))
    if not report.path.is_dir():
        report.errors.append(f"{report.path}: not a directory")
        return report
    try:
        _validate_into(report)
    except CheckpointError as exc:
        report.errors.append(str(exc))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        report.errors.append(f"{report.path}: {type(exc).__name__}: {exc}")
    return report


def _validate_into(report: CheckpointReport) -> None:
    root = report.path
    main_cfg = _check_transformer(report, TRANSFORMER_DIR, restoration=True)
    ref_cfg = _check_transformer(report, TRANSFORMER_REF_DIR, restoration=False)
    report.transformer_config = main_cfg
    if main_cfg and ref_cfg and main_cfg != ref_cfg:
        diff = sorted(k for k in set(main_cfg) | set(ref_cfg) if main_cfg.get(k) != ref_cfg.get(k))
        report.errors.append(
            f"transformer and transformer_ref configs differ in: {', '.join(diff)}"
        )

    motion_path = root / MOTION_FILE
    if motion_path.is_file():
        state = _load_motion_state(motion_path)
        shapes = {k: tuple(v.shape) for k, v in state.items()}
        mcfg = motion_config_from_shapes(shapes)
        report.motion_config = mcfg
        report.errors += compare_shapes(MOTION_FILE, _expected_shapes(_meta_motion(mcfg)), shapes)
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
    else:
        report.errors.append(f"{MOTION_FILE}: missing")

    vae_cfg_path, vae_weights = root / VAE_DIR / CONFIG_FILE, root / VAE_DIR / WEIGHTS_FILE
    if vae_cfg_path.is_file() and vae_weights.is_file():
        vcfg = _read_config(vae_cfg_path)
        report.vae_config = vcfg
        shapes, _ = _header_shapes(vae_weights)
        report.errors += compare_shapes(
            f"{VAE_DIR}/{WEIGHTS_FILE}", _expected_shapes(_meta_vae(vcfg)), shapes
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
    else:
        report.errors.append(f"{VAE_DIR}/: needs {CONFIG_FILE} and {WEIGHTS_FILE}")

    try:
        prompt, pooled, source = _load_prompt(root)
    except CheckpointError as exc:
        report.errors.append(str(exc))
    else:
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


# --------------------------------------------------------------------------- loading


def _strict_assign(
    module: nn.Module,
    state: Mapping[str, torch.Tensor],
    what: str,
    device: torch.device,
    dtype: torch.dtype,
) -> nn.Module:
    errors = compare_shapes(
        what, _expected_shapes(module), {k: tuple(v.shape) for k, v in state.items()}
    )
    if errors:
        raise CheckpointError("; ".join(errors))
    converted = {
        k: v.to(device=device, dtype=dtype if v.is_floating_point() else v.dtype)
        for k, v in state.items()
    }
    module.load_state_dict(converted, strict=True, assign=True)
    module.to(device)
    leftovers = [n for n, t in [*module.named_parameters(), *module.named_buffers()] if t.is_meta]
    if leftovers:
        raise CheckpointError(f"{what}: tensors not initialised by the file: {_named(leftovers)}")
    module.requires_grad_(False)
    return module.eval()


def _read_safetensors(
    path: Path, device: torch.device, dtype: torch.dtype
) -> dict[str, torch.Tensor]:
    """Tensor by tensor, cast on the way, so an fp32 file never sits whole in memory twice."""
    from safetensors import safe_open

    out: dict[str, torch.Tensor] = {}
    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            for key in fh.keys():  # noqa: SIM118 - safe_open is not a mapping
                t = fh.get_tensor(key)
                out[key] = t.to(device=device, dtype=dtype if t.is_floating_point() else t.dtype)
    except torch.OutOfMemoryError:
        raise  # the restorer reports it as OutOfDeviceMemory
    except Exception as exc:  # SafetensorError (a damaged file) derives from Exception only
        raise CheckpointError(f"{path}: cannot read ({exc})") from None
    return out


def load_checkpoint(
    directory: Path | str,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    vae_dtype: torch.dtype | None = None,
) -> LiveMomentsModels:
    """Validate, then strictly load every network onto `device` in `dtype`.

    The VAE runs in `vae_dtype` (default: float32 unless `dtype` is bfloat16, because the SD3
    VAE overflows in float16, hence its `force_upcast`).
    """
    from diffusers import AutoencoderKL

    from core.livemoments.model import build_transformer
    from core.livemoments.motion_encoder import MotionEncoder

    report = validate_checkpoint(directory)
    if not report.ok:
        raise CheckpointError("invalid LiveMoments checkpoint: " + "; ".join(report.errors))
    root = report.path
    device = torch.device(device)
    if vae_dtype is None:
        vae_dtype = torch.bfloat16 if dtype == torch.bfloat16 else torch.float32
    cfg = report.transformer_config
    nets = []
    for sub, restoration in ((TRANSFORMER_DIR, True), (TRANSFORMER_REF_DIR, False)):
        with torch.device("meta"):
            net = build_transformer(cfg, restoration=restoration)
        state = _read_safetensors(root / sub / WEIGHTS_FILE, device, dtype)
        nets.append(_strict_assign(net, state, f"{sub}/{WEIGHTS_FILE}", device, dtype))
        del state
    assert report.motion_config is not None
    with torch.device("meta"):
        motion = MotionEncoder(report.motion_config)
    motion = _strict_assign(
        motion, _load_motion_state(root / MOTION_FILE), MOTION_FILE, device, dtype
    )
    with torch.device("meta"):
        vae = AutoencoderKL.from_config(dict(report.vae_config))
    vae = _strict_assign(
        vae,
        _read_safetensors(root / VAE_DIR / WEIGHTS_FILE, device, vae_dtype),
        f"{VAE_DIR}/{WEIGHTS_FILE}",
        device,
        vae_dtype,
    )
    prompt, pooled, _ = _load_prompt(root)
    return LiveMomentsModels(
        transformer=nets[0],
        transformer_ref=nets[1],
        motion_encoder=motion,
        vae=vae,
        prompt_embeds=prompt.to(device, dtype),
        pooled_prompt_embeds=pooled.to(device, dtype),
        raft_weights=report.raft_weights,
        random_weights=report.random_weights,
        digest=weights_digest(root),
        device=device,
        dtype=dtype,
        vae_dtype=vae_dtype,
    )


# --------------------------------------------------------------------------- writing


def _save_module(
    module: nn.Module, folder: Path, config: Mapping[str, Any], class_name: str, dtype: torch.dtype
) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    payload = {"_class_name": class_name, "_lmd_random_weights": True, **config}
    (folder / CONFIG_FILE).write_text(json.dumps(payload, indent=2) + "\n")
    state = {k: v.detach().to(dtype).contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_FILE), metadata={RANDOM_METADATA_KEY: "true"})


def write_random_checkpoint(
    directory: Path | str, size: Size = "tiny", seed: int = 0, dtype: torch.dtype | None = None
) -> Path:
    """Write a checkpoint with random weights in the published layout (tests, benchmarks, wiring).

    Its files say they are random: a RANDOM_WEIGHTS.txt marker, safetensors metadata and a
    config flag. `point_proj` gets small random values (not the published zero init) so the
    motion path changes the output and is exercised end to end.
    """
    from diffusers import AutoencoderKL
    from safetensors.torch import save_file

    from core.livemoments.model import build_transformer
    from core.livemoments.motion_encoder import MotionEncoder

    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    spec = sizes(size)
    dtype = dtype or (torch.float16 if size == "full" else torch.float32)
    torch.manual_seed(seed)
    main = build_transformer(spec.transformer, restoration=True)
    with torch.no_grad():
        for proc in main.attn_processors.values():
            nn.init.normal_(proc.point_proj.weight, std=0.02)
    _save_module(
        main, root / TRANSFORMER_DIR, spec.transformer, "SD3TransformerFuseMotion2DModel", dtype
    )
    del main
    ref = build_transformer(spec.transformer, restoration=False)
    _save_module(ref, root / TRANSFORMER_REF_DIR, spec.transformer, "SD3Transformer2DModel", dtype)
    del ref
    motion = MotionEncoder(spec.motion)
    torch.save({k: v.to(torch.float32) for k, v in motion.state_dict().items()}, root / MOTION_FILE)
    vae = AutoencoderKL.from_config(dict(spec.vae))
    _save_module(vae, root / VAE_DIR, spec.vae, "AutoencoderKL", torch.float32)
    generator = torch.Generator().manual_seed(seed + 1)
    prompt = 0.1 * torch.randn(
        1, spec.prompt_tokens, spec.transformer["joint_attention_dim"], generator=generator
    )
    pooled = 0.1 * torch.randn(1, spec.transformer["pooled_projection_dim"], generator=generator)
    save_file(
        {PROMPT_KEY: prompt, POOLED_KEY: pooled},
        str(root / PROMPT_FILE),
        metadata={RANDOM_METADATA_KEY: "true"},
    )
    (root / RANDOM_MARKER).write_text(
        f"RANDOM WEIGHTS ({size} size, seed {seed}) written by `lmd model init`.\n"
        "This is not the LiveMoments model: it restores nothing. Use it only for tests,\n"
        "benchmarks and wiring checks.\n"
    )
    return root


def save_prompt_embeddings(
    directory: Path | str, prompt: torch.Tensor, pooled: torch.Tensor
) -> Path:
    from safetensors.torch import save_file

    path = Path(directory) / PROMPT_FILE
    save_file(
        {
            PROMPT_KEY: prompt.detach().float().cpu().contiguous(),
            POOLED_KEY: pooled.detach().float().cpu().contiguous(),
        },
        str(path),
        metadata={"lmd.source": "StableDiffusion3Pipeline.encode_prompt('', '', '')"},
    )
    return path


# --------------------------------------------------------------------------- digest

_CHUNK = 1 << 16
_SAMPLES = 16
_FULL_HASH_LIMIT = 1 << 26


def _sample_file(h: Any, path: Path, start: int) -> None:
    """Hash evenly spaced 64 KiB windows of a file's data: cheap, yet changes with the weights."""
    size = path.stat().st_size
    span = max(size - start, 0)
    with path.open("rb") as fh:
        if span <= _FULL_HASH_LIMIT:
            fh.seek(start)
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
            return
        for i in range(_SAMPLES):
            fh.seek(start + (span - _CHUNK) * i // (_SAMPLES - 1))
            h.update(fh.read(_CHUNK))


def weights_digest(directory: Path | str) -> str:
    """Identify a checkpoint for job identities, in well under a second even for 17 GB.

    Hashes every weight file's name and size, each safetensors header (names, shapes, dtypes,
    offsets) and sampled windows of the tensor data; small files are hashed whole. Modification
    times are deliberately left out, so copying a checkpoint to another box keeps its identity.
    """
    root = Path(directory)
    h = hashlib.sha256(b"lmd-livemoments-v1\0")
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and p.suffix in {".safetensors", ".pt", ".pth", ".json", ".txt"}
        and p.name != RANDOM_MARKER
    )
    for path in files:
        rel = path.relative_to(root).as_posix()
        h.update(f"{rel}\0{path.stat().st_size}\0".encode())
        if path.suffix == ".safetensors":
            header, start = _safetensors_header(path)
            h.update(json.dumps(header, sort_keys=True).encode())
            _sample_file(h, path, start)
        else:
            _sample_file(h, path, 0)
    return h.hexdigest()
