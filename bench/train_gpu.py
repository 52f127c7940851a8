"""Benchmark: `lmd train fit` steps at full size (two SD3-medium transformers) on a GPU.

Usage:  .venv/bin/python bench/train_gpu.py [--tile 1024] [--batch 1] [--steps 3]
        [--lora-rank 16] [--only full|full+ckpt|lora|lora+ckpt ...]
        .venv/bin/python bench/train_gpu.py --cpu-smoke   # tiny sizes on the CPU: wiring only

For each variant — full fine-tuning of the image branches, the same with gradient checkpointing,
LoRA (rank 16) and LoRA with checkpointing, all with bf16 autocast — it builds the full
architecture with random weights directly on the device (no checkpoint needed), takes one
warm-up step and `--steps` timed steps of `core.livemoments.training.trainer.Trainer` on random
texture pairs, and prints seconds per step, peak GPU memory and both as ratios to the first
variant measured in the same run. A variant that runs out of memory is reported as such.
The flow of each pair (DIS on the CPU, as training computes it without RAFT weights) is part of
a step, as in training. Random weights learn nothing useful: this measures speed and memory.

Full fine-tuning keeps float32 weights (AdamW needs them: ≈2.2 B trained parameters, 35 GB of
weights, gradients and optimizer state); LoRA keeps the frozen base in bf16. The 24 GB target
is the LoRA variant with checkpointing at batch 1.

Without a CUDA GPU it says so and exits with status 2.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import sys
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

from core.livemoments.config import sizes  # noqa: E402

VARIANTS = {
    "full": {"lora": False, "ckpt": False},
    "full+ckpt": {"lora": False, "ckpt": True},
    "lora": {"lora": True, "ckpt": False},
    "lora+ckpt": {"lora": True, "ckpt": True},
}


def _random_models(size: str, device: torch.device, dtype: torch.dtype) -> Any:
    """bench/gpu.py's builder (random weights made on the device), loaded by path."""
    spec_file = importlib.util.spec_from_file_location("bench_gpu", ROOT / "bench" / "gpu.py")
    assert spec_file is not None and spec_file.loader is not None
    module = importlib.util.module_from_spec(spec_file)
    spec_file.loader.exec_module(module)
    return module.build_random_models(sizes(size), device, dtype)  # type: ignore[arg-type]


def _pairs(tile: int, count: int, seed: int = 0) -> list[Any]:
    """Random smooth textures as pairs (LQ at half size, as a 1080p frame to a 12 MP photo)."""
    import cv2

    from core.livemoments.training.dataset import PairImages

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        small = rng.random((tile // 16, tile // 16, 3)).astype(np.float32)
        hq = cv2.resize(small, (tile, tile), interpolation=cv2.INTER_CUBIC).clip(0, 1)
        ref = np.roll(hq, (7, -5), axis=(0, 1))
        lq = cv2.resize(hq, (tile // 2, tile // 2), interpolation=cv2.INTER_AREA)
        ref_lq = cv2.resize(ref, (tile // 2, tile // 2), interpolation=cv2.INTER_AREA)
        out.append(PairImages(hq=hq, lq=lq, ref=ref, ref_lq=ref_lq))
    return out


def run_variant(name: str, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    from core.flow import DISFlow
    from core.livemoments.training.trainer import FitOptions, Trainer

    flags = VARIANTS[name]
    size = "tiny" if args.cpu_smoke else "full"
    cuda = device.type == "cuda"
    dtype = torch.bfloat16 if flags["lora"] else torch.float32
    options = FitOptions(
        batch=args.batch,
        lora_rank=args.lora_rank if flags["lora"] else None,
        grad_checkpointing=flags["ckpt"],
        mixed_precision="no" if args.cpu_smoke else "bf16",
    )
    result: dict[str, Any] = {"variant": name}
    trainer = None
    try:
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        models = _random_models(size, device, dtype)
        trainer = Trainer(models, options, DISFlow("medium"), args.tile)
        result["trained_params_m"] = trainer.trainable_count / 1e6
        pairs = _pairs(args.tile, args.batch)
        trainer.step(pairs)  # warm-up: allocator, kernels, optimizer state
        if cuda:
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        for _ in range(args.steps):
            trainer.step(pairs)
        if cuda:
            torch.cuda.synchronize(device)
        result["s_per_step"] = (time.perf_counter() - started) / args.steps
        if cuda:
            result["peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    except torch.OutOfMemoryError:
        result["error"] = "out of memory"
    finally:
        if trainer is not None:
            trainer.close()
        del trainer
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tile", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--lora-rank", type=int, default=16)
    parser.add_argument("--only", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--cpu-smoke", action="store_true",
                        help="tiny sizes on the CPU: checks the wiring, measures nothing useful")
    args = parser.parse_args(argv)
    if args.cpu_smoke:
        device = torch.device("cpu")
        args.tile = min(args.tile, 64)
    elif not torch.cuda.is_available():
        print("bench/train_gpu.py: no CUDA GPU here; the full-size training benchmark needs "
              "one (run with --cpu-smoke to check the wiring on tiny sizes).", file=sys.stderr)
        return 2
    else:
        device = torch.device("cuda")
        print(f"device {torch.cuda.get_device_name(device)}, tile {args.tile}, batch "
              f"{args.batch}, {args.steps} timed steps, bf16 autocast, LoRA rank {args.lora_rank}")
    rows = [run_variant(name, args, device) for name in args.only]
    base = next((r for r in rows if "s_per_step" in r), None)
    print(f"{'variant':<10} {'trained M':>10} {'s/step':>8} {'× base':>7} {'peak GiB':>9} "
          f"{'× base':>7}")
    for row in rows:
        if "error" in row:
            print(f"{row['variant']:<10} {row.get('trained_params_m', 0):>10.1f} "
                  f"{row['error']}")
            continue
        speed = row["s_per_step"] / base["s_per_step"] if base else float("nan")
        peak = row.get("peak_gib")
        ratio = peak / base["peak_gib"] if peak and base and base.get("peak_gib") else None
        print(f"{row['variant']:<10} {row['trained_params_m']:>10.1f} {row['s_per_step']:>8.3f}"
              f" {speed:>7.2f} {peak if peak is not None else float('nan'):>9.2f}"
              f" {ratio if ratio is not None else float('nan'):>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
