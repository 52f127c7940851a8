"""The LiveMoments tile loop, top to bottom, like a diffusers pipeline.

1. Global flow target → reference-LQ at video resolution (RAFT's correlation volume makes a
   12 MP flow infeasible), then target, reference-LQ and flow upscaled to reference resolution.
2. Tiles of `tile` px overlapping by `overlap` (core.tiling); for each, Patch Correspondence
   Retrieval picks the reference crop by the mean flow in the tile.
3. Per tile: local flow reference-LQ crop → target tile (reference grid, as the reference keys),
   motion encoder, VAE encode of tile and reference crop with the SD3 shift/scale (posterior mode,
   not a sample: deterministic), 0.8·z_LQ + 0.2·ε, six Euler steps of the two-branch net, decode.
4. Blend (C² window with a positive floor) and the wavelet colour fix against the upscaled frame.

Tiles are padded to the full tile size so that several run as one batch, and noise is seeded per
tile (not per batch position), so a tile sees the same inputs whatever the batch. What batching
does change is float rounding: batched matrix products and convolutions may sum in another order,
so `tile_batch` 1 and 3 agree only to rounding (about 2e-5 in float32 on the tiny test model; the
test holds the result to half an 8-bit output level). `deterministic=True` makes the result
exact instead: every network then sees one tile at a time, so the output is bitwise the same for
any `tile_batch` (checked on the CPU; on CUDA some kernels also vary from run to run unless
`torch.use_deterministic_algorithms` is set), at the price of the batch's throughput on a GPU.

Cancellation is checked before every network call; progress is reported per tile and step.
A caller may steer the six steps through `on_step_end` (`TileStepHook`), as clip restoration
does with motion guidance; without one the result is the still restoration's, bit for bit.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from core.api import CancelToken, OutOfDeviceMemory, ProgressCallback
from core.colorfix import wavelet_color_fix
from core.flow import FlowEstimator, forward_backward_confidence, resize_flow
from core.images import resize
from core.livemoments.config import TILE_MULTIPLE
from core.livemoments.load import LiveMomentsModels
from core.livemoments.model import TwoBranchVelocity
from core.livemoments.sampler import (
    StepEnd,
    bridge_sigmas,
    euler_sample,
    initial_latent,
    seeded_noise,
)
from core.tiling import Blender, Tile, pcr_crop_origin, tile_grid

TileStepHook = Callable[[Sequence[Tile], StepEnd], torch.Tensor | None]
"""`on_step_end(tiles, state)`: called after every sampler step of a batch of tiles (their
latents are `state.latent`, one row per tile, in the order of `tiles`; tiles are windows of the
output grid, padded to the full tile size). Returns the latents to continue from, or None to
keep the step's own: diffusers' `callback_on_step_end`, per tile batch. Clip restoration steers
the sampling with it (`core.video.livemoments_video`); the sampler stays pure math."""


@dataclass(slots=True)
class PipelineOptions:
    tile: int = 1024
    overlap: int = 64
    tile_batch: int = 1
    seed: int = 0
    offload: bool = False
    """Keep the VAE and motion encoder off the accelerator except while they run."""
    color_fix: bool = True
    local_flow_scale: float = 1.0
    """Compute the per-tile flow at this fraction of the tile size and upscale it (RAFT's
    correlation volume grows with the fourth power of the side: 0.5 saves ≈1 GB at 1024²)."""
    deterministic: bool = False
    """Run the networks on one tile at a time, so the result does not depend on `tile_batch`
    even in its rounding (see the module docstring)."""

    @property
    def network_batch(self) -> int:
        """How many tiles go through the networks together."""
        return 1 if self.deterministic else max(1, self.tile_batch)


@dataclass(slots=True)
class PipelineStats:
    tiles: int = 0
    steps: int = 0
    flow_confidence: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    def add_time(self, key: str, seconds: float) -> None:
        self.timings[key] = self.timings.get(key, 0.0) + seconds


@contextlib.contextmanager
def _timed(stats: PipelineStats, key: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        stats.add_time(key, time.perf_counter() - start)


def _is_oom(exc: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or the RuntimeError MPS and older builds raise instead."""
    oom = getattr(torch, "OutOfMemoryError", None)
    if oom is not None and isinstance(exc, oom):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _pad_to(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pad bottom/right to (height, width): mirrored where possible, else edge-replicated."""
    h, w = image.shape[:2]
    ph, pw = height - h, width - w
    if ph == 0 and pw == 0:
        return image
    pads = ((0, ph), (0, pw)) + ((0, 0),) * (image.ndim - 2)
    mode = "reflect" if ph < h and pw < w else "edge"
    return np.pad(image, pads, mode=mode)


def _to_model(images: list[np.ndarray], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """List of H×W×3 [0, 1] arrays → [B, 3, H, W] in [-1, 1]."""
    batch = np.stack(images).transpose(0, 3, 1, 2)
    return (torch.from_numpy(np.ascontiguousarray(batch)).to(device, dtype) * 2.0 - 1.0).clamp(
        -1, 1
    )


class LiveMomentsPipeline:
    """Runs the restoration of one image pair with loaded `LiveMomentsModels`."""

    def __init__(
        self,
        models: LiveMomentsModels,
        global_flow: FlowEstimator,
        local_flow: FlowEstimator,
        options: PipelineOptions | None = None,
    ) -> None:
        self.models = models
        self.global_flow = global_flow
        self.local_flow = local_flow
        self.options = options or PipelineOptions()
        if self.options.tile % TILE_MULTIPLE:
            raise ValueError(f"tile size must be a multiple of {TILE_MULTIPLE}")
        self.velocity = TwoBranchVelocity(
            models.transformer,
            models.transformer_ref,
            models.prompt_embeds,
            models.pooled_prompt_embeds,
        )
        vae_cfg = models.vae.config
        if self.options.offload and self.options.tile >= 2 * TILE_MULTIPLE:
            # Low-memory mode: the VAE works on quarter tiles (diffusers' tiled VAE, blended
            # overlaps), which cuts its activation peak at 1024² by about 4×.
            vae = models.vae
            vae.use_tiling = True
            vae.tile_sample_min_size = self.options.tile // 2
            vae.tile_latent_min_size = self.options.tile // 16
        self.shift = float(vae_cfg.shift_factor)
        self.scale = float(vae_cfg.scaling_factor)

    def close(self) -> None:
        self.velocity.close()

    # ------------------------------------------------------------------ device helpers

    @contextlib.contextmanager
    def _resident(self, module: torch.nn.Module) -> Iterator[torch.nn.Module]:
        """With offloading, move a small network to the accelerator only while it runs."""
        if not self.options.offload or self.models.device.type == "cpu":
            yield module
            return
        module.to(self.models.device)
        try:
            yield module
        finally:
            module.to("cpu")

    def offload_idle(self) -> None:
        if self.options.offload and self.models.device.type != "cpu":
            self.models.vae.to("cpu")
            self.models.motion_encoder.to("cpu")

    # ------------------------------------------------------------------ stages

    def _encode(self, pixels: torch.Tensor) -> torch.Tensor:
        with self._resident(self.models.vae) as vae:
            posterior = vae.encode(pixels.to(self.models.vae_dtype)).latent_dist
            latent = posterior.mode()
        return ((latent - self.shift) * self.scale).to(self.models.dtype)

    def _decode(self, latent: torch.Tensor) -> torch.Tensor:
        with self._resident(self.models.vae) as vae:
            z = (latent.to(self.models.vae_dtype) / self.scale) + self.shift
            return vae.decode(z, return_dict=False)[0]

    def _local_flow(self, reference_crop: np.ndarray, target_tile: np.ndarray) -> np.ndarray:
        scale = self.options.local_flow_scale
        size = target_tile.shape[0]
        if scale >= 1.0:
            return self.local_flow(reference_crop, target_tile)
        small = max(TILE_MULTIPLE, round(size * scale / 8) * 8)
        flow = self.local_flow(
            resize(reference_crop, small, small), resize(target_tile, small, small)
        )
        return resize_flow(flow, size, size)

    def _motion(self, flows: list[np.ndarray]) -> list[torch.Tensor]:
        batch = np.stack(flows).transpose(0, 3, 1, 2)
        t = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        with self._resident(self.models.motion_encoder) as encoder:
            t = t.to(self.models.device, self.models.dtype)
            return [e.to(self.models.dtype) for e in encoder(t)]

    # ------------------------------------------------------------------ main entry

    def __call__(
        self,
        target: np.ndarray,
        reference: np.ndarray,
        reference_lq: np.ndarray | None = None,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        stats: PipelineStats | None = None,
        on_step_end: TileStepHook | None = None,
    ) -> np.ndarray:
        """Restore `target` (video resolution) to `reference`'s resolution; float32 H×W×3."""
        try:
            with torch.inference_mode():
                return self._run(
                    target, reference, reference_lq, progress, cancel, stats, on_step_end
                )
        except Exception as exc:
            if _is_oom(exc):
                if self.models.device.type == "cuda":
                    torch.cuda.empty_cache()
                raise OutOfDeviceMemory(
                    f"out of {self.models.device.type} memory with tile {self.options.tile} and "
                    f"tile batch {self.options.tile_batch}: {exc}"
                ) from exc
            raise

    def _run(
        self,
        target: np.ndarray,
        reference: np.ndarray,
        reference_lq: np.ndarray | None,
        progress: ProgressCallback | None,
        cancel: CancelToken | None,
        stats: PipelineStats | None,
        on_step_end: TileStepHook | None = None,
    ) -> np.ndarray:
        opts = self.options
        stats = stats if stats is not None else PipelineStats()
        report: ProgressCallback = progress or (lambda _f, _s: None)
        check: Callable[[], None] = cancel.raise_if_cancelled if cancel else (lambda: None)
        th, tw = target.shape[:2]
        rh, rw = reference.shape[:2]
        if reference_lq is None:
            # No video frame at T0: a downscaled reference stands in for it (same grid, less
            # faithful degradation).
            reference_lq = resize(reference, th, tw, interpolation="area")
        elif reference_lq.shape[:2] != (th, tw):
            reference_lq = resize(reference_lq, th, tw)

        check()
        report(0.0, "global flow")
        with _timed(stats, "global_flow"):
            flow = self.global_flow(target, reference_lq)
            # Forward-backward consistency: where the flow is trustworthy. PCR averages only
            # there (occlusions and textureless areas would pull the crop off), and its mean is
            # reported as the restoration's flow confidence.
            backward = self.global_flow(reference_lq, target)
            confidence = forward_backward_confidence(flow, backward)
            stats.flow_confidence = float(confidence.mean())
        with _timed(stats, "upscale"):
            target_up = resize(target, rh, rw, interpolation="bicubic")
            ref_lq_up = resize(reference_lq, rh, rw, interpolation="bicubic")
            flow_up = resize_flow(flow, rh, rw)
            trusted = resize(confidence, rh, rw, interpolation="nearest")
            trusted = (trusted.reshape(rh, rw) >= 0.5) if (trusted >= 0.5).mean() > 0.05 else None

        tiles = tile_grid(rh, rw, opts.tile, opts.overlap)
        stats.tiles = len(tiles)
        sigmas = bridge_sigmas()
        n_steps = len(sigmas) - 1
        blender = Blender(rh, rw, channels=3)
        size = opts.tile
        batch_size = opts.network_batch
        done = 0
        for start in range(0, len(tiles), batch_size):
            group = tiles[start : start + batch_size]
            check()
            lq_tiles, ref_tiles, flows = [], [], []
            with _timed(stats, "local_flow"):
                for tile in group:
                    ys, xs = tile.slices
                    lq_tile = _pad_to(target_up[ys, xs], size, size)
                    y, x = pcr_crop_origin(
                        flow_up, tile, trusted, None, (rh, rw), crop_size=(size, size)
                    )
                    ref_crop = _pad_to(reference[y : y + size, x : x + size], size, size)
                    ref_lq_crop = _pad_to(ref_lq_up[y : y + size, x : x + size], size, size)
                    flows.append(self._local_flow(ref_lq_crop, lq_tile))
                    lq_tiles.append(lq_tile)
                    ref_tiles.append(ref_crop)
            check()
            device, dtype = self.models.device, self.models.dtype
            with _timed(stats, "motion"):
                motion = self._motion(flows)
            with _timed(stats, "encode"):
                z_lq = self._encode(_to_model(lq_tiles, device, self.models.vae_dtype))
                z_ref = self._encode(_to_model(ref_tiles, device, self.models.vae_dtype))
            noise = torch.cat(
                [
                    seeded_noise(z_lq.shape[1:], opts.seed * 100_003 + t.index, dtype, device)[None]
                    for t in group
                ]
            )
            z0 = initial_latent(z_lq, noise)

            def on_step(k: int, n: int, _done: int = done, _group: list[Tile] = group) -> None:
                check()
                frac = (_done + len(_group) * k / n) / len(tiles)
                report(
                    0.05 + 0.9 * frac,
                    f"tiles {_done + 1}-{_done + len(_group)}/{len(tiles)} step {k + 1}/{n}",
                )

            def velocity(
                z: torch.Tensor, sigma: float, _ref: Any = z_ref, _motion: Any = motion
            ) -> torch.Tensor:
                return self.velocity(z, sigma, _ref, _motion)

            step_end = None
            if on_step_end is not None:

                def step_end(
                    state: StepEnd, _group: list[Tile] = group
                ) -> torch.Tensor | None:
                    return on_step_end(_group, state)

            with _timed(stats, "denoise"):
                latent = euler_sample(
                    velocity, z0, sigmas, on_step=on_step, on_step_end=step_end
                )
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
            stats.steps += n_steps * len(group)
            check()
            with _timed(stats, "decode"):
                pixels = self._decode(latent)
                out = ((pixels.float().clamp(-1, 1) + 1.0) / 2.0).permute(0, 2, 3, 1).cpu().numpy()
            for tile, restored in zip(group, out, strict=True):
                blender.add(tile, restored[: tile.h, : tile.w])
            done += len(group)
            report(0.05 + 0.9 * done / len(tiles), f"tile {done}/{len(tiles)} done")
        with _timed(stats, "blend"):
            result = blender.result()
            if opts.color_fix:
                result = wavelet_color_fix(result, target_up)
        report(1.0, "done")
        return np.clip(result, 0.0, 1.0).astype(np.float32, copy=False)


__all__ = ["LiveMomentsPipeline", "PipelineOptions", "PipelineStats", "TileStepHook"]
