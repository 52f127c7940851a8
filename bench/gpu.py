"""Benchmark: the LiveMoments restorer at full size with random weights, on a GPU.

Usage:  .venv/bin/python bench/gpu.py [--low-memory] [--compile] [--dtype bf16|fp16]
        [--flow raft|dis] [--tile-batch N] [--repeat N] [--peak-tflops X]
        .venv/bin/python bench/gpu.py --tiny        # CPU smoke run with the tiny test sizes

Builds the full architecture (two SD3-medium transformers, the motion encoder, the SD3 VAE and
RAFT-large) directly on the device with random weights, so no checkpoint is needed, and prints
for one 1024×1024 tile (six steps) and for a 12-megapixel Live Photo (1440×1080 frame,
4032×3024 reference, 20 tiles): seconds, peak GPU memory, and achieved TFLOP/s against the
device's dense bf16 peak. FLOPs are counted exactly by running the networks once on PyTorch's
meta device under `FlopCounterMode` (transformers both branches, motion encoder, VAE; RAFT and
CPU work excluded), so the TFLOP/s figure is model FLOPs per wall second.

The clip figure (`livemoments-video`'s path, issue 14 item 5) restores `--clip-frames` frames of
a scene panning 3 px per frame at the frame size (1440×1080 → 4 tiles per frame) twice, without
and with the motion-guided latent guidance, and prints seconds per frame, their ratio and the
mean latent warping error between neighbouring frames (the quantity the guidance lowers; with
random weights it says that the guidance acts, not how good the video looks).

Paper (H20): 1.89 s per tile, ≈40 s per 4K photo, 14.5 GB peak. Targets on an H100: ≤ 0.35 s per
tile, ≤ 8 s per 12 MP photo, ≤ 16 GB peak by default and ≤ 10 GB with --low-memory.
Random weights restore nothing: this measures speed and memory only.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# Python puts bench/ first on sys.path; a bench module named like a stdlib one (queue.py) would
# shadow it inside torch, so only the repository root goes there.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from core.livemoments.config import ModelSizes, sizes  # noqa: E402
from core.livemoments.load import LiveMomentsModels  # noqa: E402

# Dense (no sparsity) bf16 tensor-core peaks in TFLOP/s, by device-name fragment.
BF16_PEAK_TFLOPS = {
    "H200": 989.0,
    "H100 SXM": 989.0,
    "H100 80GB HBM3": 989.0,
    "H100 NVL": 835.0,
    "H100 PCIe": 756.0,
    "H100": 989.0,
    "H20": 148.0,
    "GH200": 989.0,
    "B200": 2250.0,
    "A100": 312.0,
    "A10G": 70.0,
    "L40S": 362.0,
    "L4": 121.0,
    "RTX 4090": 165.0,
    "RTX 3090": 71.0,
}


def _g(flops: float) -> str:
    """FLOPs with a readable unit (the tiny model counts megaflops, the full one teraflops)."""
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6)):
        if flops >= scale:
            return f"{flops / scale:.3g} {unit}FLOP"
    return f"{flops:.3g} FLOP"


def device_peak_tflops(name: str) -> float | None:
    for key, value in BF16_PEAK_TFLOPS.items():
        if key in name:
            return value
    return None


def build_random_models(
    spec: ModelSizes, device: torch.device, dtype: torch.dtype, seed: int = 0
) -> LiveMomentsModels:
    """Random full-architecture models, built on the device (no files, no CPU round trip)."""
    from diffusers import AutoencoderKL

    from core.livemoments.model import build_transformer
    from core.livemoments.motion_encoder import MotionEncoder

    torch.manual_seed(seed)
    vae_dtype = torch.bfloat16 if dtype == torch.bfloat16 else torch.float32
    with torch.device(device):
        main = build_transformer(spec.transformer, restoration=True).to(dtype)
        with torch.no_grad():
            for proc in main.attn_processors.values():
                proc.point_proj.weight.normal_(std=0.02)
        ref = build_transformer(spec.transformer, restoration=False).to(dtype)
        motion = MotionEncoder(spec.motion).to(dtype)
        vae = AutoencoderKL.from_config(dict(spec.vae)).to(vae_dtype)
        prompt = 0.1 * torch.randn(1, spec.prompt_tokens, spec.transformer["joint_attention_dim"])
        pooled = 0.1 * torch.randn(1, spec.transformer["pooled_projection_dim"])
    for net in (main, ref, motion, vae):
        net.requires_grad_(False).eval()
    return LiveMomentsModels(
        transformer=main,
        transformer_ref=ref,
        motion_encoder=motion,
        vae=vae,
        prompt_embeds=prompt.to(dtype),
        pooled_prompt_embeds=pooled.to(dtype),
        raft_weights=None,
        random_weights=True,
        digest="random",
        device=device,
        dtype=dtype,
        vae_dtype=vae_dtype,
    )


def tile_flops(spec: ModelSizes, tile: int, steps: int = 6) -> dict[str, float]:
    """Exact model FLOPs of one tile, counted on the meta device (no memory, no time)."""
    from diffusers import AutoencoderKL
    from torch.utils.flop_counter import FlopCounterMode

    from core.livemoments.model import TwoBranchVelocity, build_transformer
    from core.livemoments.motion_encoder import MotionEncoder

    lat = tile // 8
    with torch.device("meta"), torch.no_grad():
        main = build_transformer(spec.transformer, restoration=True)
        ref = build_transformer(spec.transformer, restoration=False)
        motion = MotionEncoder(spec.motion)
        vae = AutoencoderKL.from_config(dict(spec.vae))
        z = torch.randn(1, 16, lat, lat)
        ctx = torch.randn(1, spec.prompt_tokens, spec.transformer["joint_attention_dim"])
        pooled = torch.randn(1, spec.transformer["pooled_projection_dim"])
        velocity = TwoBranchVelocity(main, ref, ctx, pooled)
        counts: dict[str, float] = {}
        for name, fn in (
            ("motion", lambda: motion(torch.randn(1, 2, tile, tile))),
            ("encode", lambda: vae.encode(torch.randn(2, 3, tile, tile)).latent_dist.mode()),
            ("step", lambda: velocity(z, 0.2, z, motion(torch.randn(1, 2, tile, tile)))),
            ("decode", lambda: vae.decode(z)),
        ):
            counter = FlopCounterMode(display=False)
            with counter:
                fn()
            counts[name] = float(counter.get_total_flops())
        counts["step"] -= counts["motion"]
        velocity.close()
    counts["denoise"] = steps * counts["step"]
    counts["total"] = counts["motion"] + counts["encode"] + counts["denoise"] + counts["decode"]
    return counts


def _scene(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 0.5 + 0.3 * np.sin(xx / 23.0)[..., None] * np.cos(yy / 17.0)[..., None]
    return np.clip(base + 0.05 * rng.random((h, w, 3), dtype=np.float32), 0, 1)


def make_flow(kind: str, device: torch.device, tmp: Path) -> Any:
    from core.flow import DISFlow, RaftFlow

    if kind == "dis":
        return DISFlow("medium")
    from torchvision.models.optical_flow import raft_large

    path = tmp / "raft_random.pth"
    torch.save(raft_large(weights=None, progress=False).state_dict(), path)
    return RaftFlow(path, variant="large", iters=20, device=str(device))


def run_case(pipe: Any, target: np.ndarray, reference: np.ndarray, repeat: int) -> dict[str, Any]:
    from core.livemoments.pipeline import PipelineStats

    device = pipe.models.device
    best: dict[str, Any] | None = None
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        stats = PipelineStats()
        start = time.perf_counter()
        pipe(target, reference, None, stats=stats)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
        peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0
        if best is None or seconds < best["seconds"]:
            best = {"seconds": seconds, "peak": peak, "tiles": stats.tiles, "stats": stats}
    assert best is not None
    return best


def run_clip(
    pipe: Any, reference: np.ndarray, first: np.ndarray, frames: int, strength: float
) -> dict[str, Any]:
    """Restore `frames` frames (`first` panned 3 px per frame, made one at a time) the way
    `livemoments-video` does: the still pipeline per frame, steered by a `LatentGuide`."""
    from core.flow import make_flow_estimator
    from core.video.latent_guide import LatentGuide
    from core.video.livemoments_video import NEIGHBOUR_PRESET

    device = pipe.models.device
    guide = LatentGuide(strength, make_flow_estimator("dis", preset=NEIGHBOUR_PRESET),
                        pipe.options.tile)
    size = first.shape[:2]
    start = time.perf_counter()
    for index in range(frames):
        frame = np.roll(first, 3 * index, axis=1)
        guide.begin_frame(frame, size)
        pipe(frame, reference, None, on_step_end=guide.hook)
        guide.end_frame()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    errors = [e for e in guide.errors if e is not None]
    return {
        "per_frame": (time.perf_counter() - start) / frames,
        "error": float(np.mean(errors)) if errors else float("nan"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="CPU smoke run with tiny sizes")
    parser.add_argument("--low-memory", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile both transformers")
    parser.add_argument("--dtype", default="bf16", choices=["bf16", "fp16"])
    parser.add_argument("--flow", default="raft", choices=["raft", "dis"])
    parser.add_argument("--tile-batch", type=int, default=0, help="0: 2, or 1 with --low-memory")
    parser.add_argument("--repeat", type=int, default=2, help="timed runs per case (best kept)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="device bf16 peak")
    parser.add_argument("--clip-frames", type=int, default=6,
                        help="frames of the clip figure (0: skip it)")
    args = parser.parse_args(argv)

    from diffusers.utils import logging as diffusers_logging

    from core.images import resize
    from core.livemoments.pipeline import LiveMomentsPipeline, PipelineOptions

    diffusers_logging.set_verbosity_error()

    if args.tiny:
        device, dtype, size = torch.device("cpu"), torch.float32, "tiny"
        tile, overlap = 64, 16
        frame, photo = (108, 144), (192, 256)
        args.flow = "dis"
        torch.set_num_threads(1)  # tiny nets are latency-bound; threads only contend
    else:
        if not torch.cuda.is_available():
            print(
                "bench/gpu.py: no CUDA device here. The full-size benchmark needs a CUDA GPU "
                "(≈16 GB, or ≈10-12 GB with --low-memory: two SD3-medium transformers in bf16).\n"
                "Run `bench/gpu.py --tiny` for a CPU smoke run of the same code path."
            )
            return 2
        device, size = torch.device("cuda"), "full"
        dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float16
        tile, overlap = 1024, 64
        frame, photo = (1080, 1440), (3024, 4032)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    spec = sizes(size)
    tile_batch = 1 if args.low_memory else (args.tile_batch or 2)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak_tflops = args.peak_tflops or (device_peak_tflops(name) if device.type == "cuda" else None)

    flops = tile_flops(spec, tile)
    start = time.perf_counter()
    models = build_random_models(spec, device, dtype)
    build_s = time.perf_counter() - start
    if args.compile and device.type == "cuda":
        from core.livemoments.model import compile_blocks

        compile_blocks(models.transformer)
        compile_blocks(models.transformer_ref)
    with tempfile.TemporaryDirectory() as tmp:
        flow = make_flow(args.flow, device, Path(tmp))
        pipe = LiveMomentsPipeline(
            models,
            make_flow("dis", device, Path(tmp)),  # global flow: DIS, as the restorer does
            flow,
            PipelineOptions(
                tile=tile,
                overlap=overlap,
                tile_batch=tile_batch,
                offload=args.low_memory,
                local_flow_scale=0.5 if args.low_memory else 1.0,
            ),
        )
        pipe.offload_idle()
        one = _scene(tile, tile, 1)
        big = _scene(*photo, 2)
        small = resize(big, *frame)
        run_case(pipe, one, one, 1)  # warm-up: kernels, cuDNN autotuning, compilation
        tile_res = run_case(pipe, one, one, args.repeat)
        photo_res = run_case(pipe, small, big, args.repeat)
        clip_res = {}
        if args.clip_frames > 0:
            from core.livemoments.video_guidance import DEFAULT_STRENGTH
            from core.video.livemoments_video import keyframe_reference

            key = keyframe_reference(big, frame)
            for strength in (0.0, DEFAULT_STRENGTH):
                clip_res[strength] = run_clip(pipe, key, small, args.clip_frames, strength)
        pipe.close()

    def tflops(res: dict[str, Any]) -> float:
        return flops["total"] * res["tiles"] / res["seconds"] / 1e12

    print(
        f"device: {name}  dtype: {str(dtype).removeprefix('torch.')}  "
        f"low_memory: {args.low_memory}  compile: {args.compile}  tile_batch: {tile_batch}  "
        f"flow: {args.flow}  torch {torch.__version__}"
    )
    vae_flops = flops["encode"] + flops["decode"]
    print(
        f"model build {build_s:.1f} s; model FLOPs per tile {_g(flops['total'])} "
        f"(denoise {_g(flops['denoise'])}, VAE {_g(vae_flops)}, motion {_g(flops['motion'])}); "
        f"device bf16 peak {peak_tflops or 'unknown'} TFLOP/s"
    )
    header = (
        f"{'case':<34} {'tiles':>5} {'seconds':>8} {'s/tile':>7} {'peak GB':>8} "
        f"{'TFLOP/s':>9} {'% peak':>7}"
    )
    print(header)
    print("-" * len(header))
    for label, res in (
        (f"one {tile}x{tile} tile, 6 steps", tile_res),
        (f"{photo[1]}x{photo[0]} photo ({photo[0] * photo[1] / 1e6:.0f} MP)", photo_res),
    ):
        achieved = tflops(res)
        share = f"{100 * achieved / peak_tflops:.1f}" if peak_tflops else "-"
        print(
            f"{label:<34} {res['tiles']:>5} {res['seconds']:>8.3f} "
            f"{res['seconds'] / res['tiles']:>7.3f} {res['peak'] / 1e9:>8.2f} "
            f"{achieved:>9.4g} {share:>7}"
        )
    print(
        "photo stage seconds: "
        + ", ".join(f"{k} {v:.3f}" for k, v in photo_res["stats"].timings.items())
    )
    if clip_res:
        (_, plain_res), (strength, guided_res) = clip_res.items()
        print(
            f"clip {frame[1]}x{frame[0]}, {args.clip_frames} frames: "
            f"{plain_res['per_frame']:.3f} s/frame without guidance, "
            f"{guided_res['per_frame']:.3f} s/frame with guidance {strength:g} "
            f"(x{guided_res['per_frame'] / plain_res['per_frame']:.3f}); "
            f"latent warping error {plain_res['error']:.4g} -> {guided_res['error']:.4g}"
        )
    if size == "full":
        print(
            "targets (H100): <= 0.35 s/tile, <= 8 s per 12 MP photo, <= 16 GB "
            "(<= 10 GB low-memory); paper H20: 1.89 s/tile, ~40 s per 4K photo, 14.5 GB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
