"""The `livemoments` restorer: the registry entry that wires checkpoint, flow and pipeline.

Models are loaded on the first restore and kept for later ones (loading two SD3 transformers
takes a while); `unload()` frees them. The restorer never unloads on its own: the daemon's worker
keeps one instance and drops it after `[restorer] idle_unload_seconds` without work, which hands
a shared GPU back between night windows (one home for that policy).

Per-job parameters (`-p KEY=VALUE`, `[restorer] params`) follow `core.livemoments.params`, which
settings and `lmd doctor` also ask; a request with a bad one is refused before anything loads.
A tile larger than the checkpoint takes is refused with a RestoreError naming the largest tile
it can take (512 px for the tiny test model, 3072 for the published one), never clamped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from core.api import Diagnostics, OutOfDeviceMemory, RestoreError, RestoreRequest, RestoreResult
from core.images import validate_image
from core.livemoments.params import DEFAULTS, checked_options, param_problems, tile_problems
from core.registry import register

log = structlog.get_logger(__name__)



@register("livemoments")
class LiveMomentsRestorer:
    """Reference-guided diffusion restoration (LiveMoments, SD3-medium two-branch transformer)."""

    name = "livemoments"

    def __init__(
        self,
        checkpoint: str | Path | None = None,
        device: str = "auto",
        dtype: str = "auto",
        low_memory: bool = False,
        compile: bool = False,
        tile: int = 1024,
        overlap: int = 64,
        tile_batch: int = 0,
        seed: int | None = None,
        flow: str = "auto",
        color_fix: bool = True,
        deterministic: bool = False,
        **unknown: Any,
    ) -> None:
        if unknown:
            raise RestoreError(f"livemoments: unknown parameters {', '.join(sorted(unknown))}")
        self.checkpoint = Path(checkpoint).expanduser() if checkpoint else None
        self.device_name = device
        self.dtype_name = dtype
        self.low_memory = bool(low_memory)
        self.compile = bool(compile)
        self.defaults: dict[str, Any] = checked_options(
            {
                "tile": tile,
                "overlap": overlap,
                "tile_batch": tile_batch,
                "seed": seed,
                "flow": flow,
                "color_fix": color_fix,
                "deterministic": deterministic,
            }
        )
        self._lock = threading.RLock()
        self._models: Any = None
        self._loaded_from: Path | None = None
        self._flows: dict[str, Any] = {}

    # ------------------------------------------------------------------ model lifetime

    def _checkpoint_dir(self, params: Mapping[str, Any]) -> Path:
        path = params.get("checkpoint") or self.checkpoint
        if not path:
            raise RestoreError(
                "livemoments needs a checkpoint directory (restorer.checkpoint); "
                "`lmd model check DIR` validates one"
            )
        return Path(path).expanduser()

    def load(self, checkpoint: Path | None = None) -> Any:
        """Load (once per checkpoint directory) and return the `LiveMomentsModels`.

        A request naming another directory than the loaded one replaces the models, so a
        restore never runs (and records the digest of) weights it did not ask for.
        """
        from core.livemoments.devices import resolve_device, resolve_dtype
        from core.livemoments.load import load_checkpoint

        with self._lock:
            path = (checkpoint or self._checkpoint_dir({})).resolve()
            if self._models is not None:
                if path == self._loaded_from:
                    return self._models
                self.unload()
            device = resolve_device(self.device_name)
            dtype = resolve_dtype(self.dtype_name, device)
            start = time.perf_counter()
            try:
                models = load_checkpoint(path, device=device, dtype=dtype)
            except Exception as exc:
                from core.livemoments.pipeline import _is_oom

                if _is_oom(exc):
                    raise OutOfDeviceMemory(
                        f"not enough {device.type} memory to load the LiveMoments models: {exc}"
                    ) from exc
                raise
            if self.compile and device.type != "cpu":
                from core.livemoments.model import compile_blocks

                compile_blocks(models.transformer)
                compile_blocks(models.transformer_ref)
            log.info(
                "livemoments_loaded",
                path=str(path),
                device=str(device),
                dtype=str(dtype),
                seconds=round(time.perf_counter() - start, 2),
                digest=models.digest,
                random_weights=models.random_weights,
            )
            if models.random_weights:
                log.warning("livemoments_random_weights", path=str(path))
            self._models = models
            self._loaded_from = path
            return models

    def unload(self) -> None:
        with self._lock:
            if self._models is None:
                return
            device = self._models.device
            self._models = None
            self._loaded_from = None
            self._flows.clear()
            if device.type == "cuda":
                import torch

                torch.cuda.empty_cache()
            log.info("livemoments_unloaded")

    # ------------------------------------------------------------------ flow

    def _flow(self, kind: str, models: Any) -> Any:
        """ "raft" needs the checkpoint's RAFT weights; "auto" uses them when present, else DIS.

        Only the per-tile flow (the motion encoder's input, trained on RAFT-Sintel) uses this
        choice; the global flow at video resolution always uses DIS: PCR only needs its patch
        means, and RAFT's correlation volume at 1080×1440 would add ≈2.4 GB of device memory.
        """
        from core.flow import make_flow_estimator

        if kind == "auto":
            kind = "raft" if models.raft_weights is not None else "dis"
        if kind not in self._flows:
            if kind == "raft":
                if models.raft_weights is None:
                    raise RestoreError(
                        "flow 'raft' needs raft/raft_large_C_T_SKHT_V1-0b8c9e55.pth"
                        " in the checkpoint directory"
                    )
                self._flows[kind] = make_flow_estimator(
                    "raft", weights_path=models.raft_weights, device=str(models.device)
                )
            else:
                self._flows[kind] = make_flow_estimator(kind)
        return self._flows[kind]

    # ------------------------------------------------------------------ restore

    def _options(self, request: RestoreRequest, models: Any) -> dict[str, Any]:
        """This request's options: the restorer's defaults, the request's parameters over them
        (already checked by `param_problems`), then the tile checked against the loaded model.

        A tile larger than the model takes is refused with the largest it can take, never
        clamped: the parameters are part of the job's identity, so the job must be made with
        the tile it records.
        """
        merged = dict(self.defaults)
        merged.update({k: v for k, v in request.params.items() if k in DEFAULTS})
        if merged["seed"] is None:
            merged["seed"] = request.seed
        merged = checked_options(merged)
        problems = tile_problems(merged["tile"], models.transformer.config, models.vae.config)
        if problems:
            raise RestoreError("; ".join(problems))
        if merged["tile_batch"] <= 0:
            merged["tile_batch"] = auto_tile_batch(models.device, merged["tile"], self.low_memory)
        if self.low_memory:
            merged["tile_batch"] = 1
        return merged

    def restore(self, request: RestoreRequest, on_step_end: Any = None) -> RestoreResult:
        """Restore one still. `on_step_end` (a `core.livemoments.pipeline.TileStepHook`) lets a
        clip restorer steer the six steps (motion guidance); stills never pass one."""
        from core.livemoments.pipeline import LiveMomentsPipeline, PipelineOptions, PipelineStats

        target = validate_image(request.target, "target")
        reference = validate_image(request.reference, "reference")
        reference_lq = (
            validate_image(request.reference_lq, "reference_lq")
            if request.reference_lq is not None
            else None
        )
        problems = param_problems(request.params)
        if problems:  # before loading anything: a typo must not cost a model load
            raise RestoreError("; ".join(problems))
        request.cancel.raise_if_cancelled()
        start = time.perf_counter()
        with self._lock:
            models = self.load(self._checkpoint_dir(request.params))
            load_s = time.perf_counter() - start
            opts = self._options(request, models)
            local_kind = str(opts["flow"])
            pipeline = LiveMomentsPipeline(
                models,
                global_flow=self._flow("dis", models),
                local_flow=self._flow(local_kind, models),
                options=PipelineOptions(
                    tile=opts["tile"],
                    overlap=opts["overlap"],
                    tile_batch=opts["tile_batch"],
                    seed=int(opts["seed"]),
                    offload=self.low_memory,
                    color_fix=opts["color_fix"],
                    local_flow_scale=0.5 if self.low_memory else 1.0,
                    deterministic=opts["deterministic"],
                ),
            )
            stats = PipelineStats()
            peak = _reset_peak(models.device)
            try:
                pipeline.offload_idle()
                image = pipeline(
                    target, reference, reference_lq, request.progress, request.cancel, stats,
                    on_step_end,
                )
            finally:
                pipeline.close()
            timings = {"load": load_s, **stats.timings, "total": time.perf_counter() - start}
            diagnostics = Diagnostics(
                timings=timings,
                tiles=stats.tiles,
                flow_confidence=stats.flow_confidence,
                peak_memory_bytes=peak(),
                device=str(models.device),
                extra={
                    "dtype": str(models.dtype).removeprefix("torch."),
                    "steps": stats.steps,
                    "tile": opts["tile"],
                    "overlap": opts["overlap"],
                    "tile_batch": pipeline.options.network_batch,
                    "deterministic": opts["deterministic"],
                    "seed": int(opts["seed"]),
                    "flow": getattr(pipeline.local_flow, "name", "?"),
                    "weights_digest": models.digest,
                    "random_weights": models.random_weights,
                    "low_memory": self.low_memory,
                },
            )
        return RestoreResult(image=np.ascontiguousarray(image), diagnostics=diagnostics)


def auto_tile_batch(
    device: Any, tile: int, low_memory: bool, budget_bytes: float = 16e9, max_batch: int = 4
) -> int:
    """How many tiles to denoise at once: 1 unless a CUDA card has room for more.

    The resident models take ≈8.6 GB in bf16; with the two nets in lockstep each 1024² tile in
    flight adds ≈2 GB (mostly the VAE's full-resolution activations), so the batch is what fits
    both in the card's free memory and under `budget_bytes` (16 GB by default).
    """
    if low_memory or getattr(device, "type", "cpu") != "cuda":
        return 1
    import torch

    free, _total = torch.cuda.mem_get_info(device)
    used = torch.cuda.memory_allocated(device)
    per_tile = 2.0e9 * (tile / 1024) ** 2
    room = min(free * 0.9, budget_bytes - used)
    return int(max(1, min(max_batch, room // per_tile)))


def _reset_peak(device: Any) -> Any:
    """Start measuring peak memory: accelerator memory on CUDA, process RSS elsewhere."""
    if getattr(device, "type", "cpu") == "cuda":
        import torch

        torch.cuda.reset_peak_memory_stats(device)
        return lambda: int(torch.cuda.max_memory_allocated(device))
    from core import memory

    memory.reset_peak()
    return memory.peak_rss_bytes
