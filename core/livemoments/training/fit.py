"""`fit`: one training run from files, as `lmd train fit` runs it.

In: an initial checkpoint (published layout) and pair sets. Out: a run folder holding the run's
identity (`run.json`), its resumable state (`train_state.pt`) and, at the end, the trained model
as a checkpoint in the published layout (`checkpoint/`), which `lmd model check` accepts and
`lmd restore --restorer livemoments -p checkpoint=…` uses. Calling `fit` again on the same run
folder with the same settings continues from the last saved state (see `state`), including with
a larger `steps`.

The networks are loaded in float32 (the trained weights need it for AdamW), except in the LoRA
variant with bf16 mixed precision, where the frozen base weights are held in bfloat16 (half the
memory) and only the adapters and the motion encoder in float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from core import hashing
from core.livemoments.layout import CheckpointError
from core.livemoments.training.dataset import MANIFEST, PairSet, PairSetError, open_pair_set
from core.livemoments.training.evaluate import build_validation, validation_loss, validation_psnr
from core.livemoments.training.publish import publish_checkpoint
from core.livemoments.training.state import (
    RunMismatch,
    check_run,
    load_state,
    save_state,
    write_run,
)
from core.livemoments.training.trainable import peft_available
from core.livemoments.training.trainer import (
    EventCallback,
    FitOptions,
    StepCallback,
    Trainer,
    TrainingError,
    make_flow,
    run_steps,
    split_pairs,
)

CHECKPOINT_DIR = "checkpoint"
RUN_FORMAT = "lmd-fit-run"
RUN_VERSION = 1


@dataclass(slots=True)
class FitResult:
    checkpoint: Path
    final: dict[str, Any]
    history: list[dict[str, Any]]


def _open_sets(pair_dirs: Sequence[Path]) -> list[PairSet]:
    if not pair_dirs:
        raise TrainingError("no pair sets given")
    try:
        return [open_pair_set(d) for d in pair_dirs]
    except PairSetError as exc:
        raise TrainingError(str(exc)) from None


def _tile(options: FitOptions, sets: Sequence[PairSet], transformer: dict, vae: dict) -> int:
    from core.livemoments.config import TILE_MULTIPLE
    from core.livemoments.params import tile_problems

    smallest = min(s.tile for s in sets)
    tile = options.tile or smallest
    if tile < TILE_MULTIPLE or tile % TILE_MULTIPLE:
        raise TrainingError(f"tile must be a positive multiple of {TILE_MULTIPLE}, got {tile}")
    if tile > smallest:
        raise TrainingError(f"tile {tile} is larger than the smallest pair set's tile {smallest}")
    problems = tile_problems(tile, transformer, vae)
    if problems:
        raise TrainingError("; ".join(problems))
    return tile


def fit(
    init: Path | str,
    pair_dirs: Sequence[Path | str],
    out: Path | str,
    options: FitOptions,
    on_event: EventCallback | None = None,
    on_step: StepCallback | None = None,
) -> FitResult:
    """Train from checkpoint `init` on `pair_dirs` into run folder `out` (see the module)."""
    from core.livemoments.devices import resolve_device
    from core.livemoments.digest import weights_digest
    from core.livemoments.load import load_checkpoint
    from core.livemoments.validate import validate_checkpoint

    options.check()
    init, out = Path(init), Path(out)
    report = validate_checkpoint(init)
    if not report.ok:
        raise TrainingError(f"{init}: not a usable checkpoint: " + "; ".join(report.errors))
    if (out / CHECKPOINT_DIR).resolve() == init.resolve():
        raise TrainingError("the initial checkpoint is the run's own output; copy it first")
    sets = _open_sets([Path(d) for d in pair_dirs])
    tile = _tile(options, sets, report.transformer_config, report.vae_config)
    if options.lora_rank and not peft_available():
        raise TrainingError("--lora-rank needs peft: pip install 'lmd[train]' (or peft)")
    if options.flow == "raft" and report.raft_weights is None:
        raise TrainingError(f"flow 'raft' needs raft weights in {init}")
    flow_kind = options.flow if options.flow != "auto" else (
        "raft" if report.raft_weights is not None else "dis"
    )
    pool = split_pairs(sets, options.val_fraction, options.seed)
    init_digest = weights_digest(init)
    manifests = [hashing.digest_file(s.root / MANIFEST) for s in sets]
    identity = {
        "format": RUN_FORMAT,
        "version": RUN_VERSION,
        "init_digest": init_digest,
        "pair_manifests": manifests,
        **options.identity(),
        "tile": tile,
        "flow": flow_kind,
    }
    try:
        resuming = check_run(out, identity)
        state = load_state(out) if resuming else None
    except RunMismatch as exc:
        raise TrainingError(str(exc)) from None
    if not resuming and out.exists() and (not out.is_dir() or any(out.iterdir())):
        # Publishing replaces OUT/checkpoint: never in a folder some other tool filled.
        raise TrainingError(f"{out} exists and is not a run folder of `lmd train fit`")
    if state is not None and state.step > options.steps:
        raise TrainingError(
            f"{out} is at step {state.step}, beyond --steps {options.steps}; ask for more steps"
        )
    device = resolve_device(options.device)
    lora_bf16 = bool(options.lora_rank) and options.mixed_precision == "bf16"
    try:
        models = load_checkpoint(
            init, device=device, dtype=torch.bfloat16 if lora_bf16 else torch.float32
        )
    except CheckpointError as exc:
        raise TrainingError(str(exc)) from None
    _, flow = make_flow(flow_kind, models)
    trainer = Trainer(models, options, flow, tile)
    try:
        if state is not None:
            trainer.restore(state)
        else:
            write_run(out, identity)
        start = state.step if state is not None else 0
        history = list(state.history) if state is not None else []
        nets = trainer.networks
        validation = build_validation(
            nets, [pool.load(e) for e in pool.val], tile, seed=options.seed + 1
        )

        def evaluate(step: int, train_loss: float | None) -> dict[str, Any]:
            psnr = validation_psnr(nets, validation, options.val_restore) \
                if options.val_restore > 0 else None
            return {
                "event": "eval",
                "step": step,
                "train_loss": train_loss,
                "val_loss": validation_loss(nets, validation, options.batch),
                "val_psnr_y": psnr,
            }

        def save(step: int, records: list[dict[str, Any]], pending: list[float]) -> None:
            save_state(out, trainer.state(step, records, pending))

        pending = list(state.pending_losses) if state is not None else []
        history = run_steps(
            trainer, pool, evaluate, save, start, history, pending, on_event, on_step
        )
        first, last = history[0], history[-1]
        provenance = {
            "created_by": "lmd train fit",
            "init": str(init.resolve()),
            "init_digest": init_digest,
            "pair_sets": [
                {"path": str(s.root.resolve()), "manifest": m, "kind": s.kind}
                for s, m in zip(sets, manifests, strict=True)
            ],
            # What determines the weights (not evaluation, save intervals or the device).
            "options": {**options.identity(), "steps": options.steps},
            "tile": tile,
            "flow": flow_kind,
            "train_pairs": len(pool.train),
            "val_pairs": len(pool.val),
            "trainable_parameters": trainer.trainable_count,
            "val_loss_start": first["val_loss"],
            "val_loss_end": last["val_loss"],
        }
        checkpoint = publish_checkpoint(out / CHECKPOINT_DIR, models, report, provenance)
    finally:
        trainer.close()
    final = {
        "event": "done",
        "steps": options.steps,
        "resumed_from": start if state is not None else None,
        "val_loss_start": first["val_loss"],
        "val_loss_end": last["val_loss"],
        "val_psnr_y_start": first["val_psnr_y"],
        "val_psnr_y_end": last["val_psnr_y"],
        "train_pairs": len(pool.train),
        "val_pairs": len(pool.val),
        "trainable_parameters": trainer.trainable_count,
        "lora_rank": options.lora_rank,
        "checkpoint": str(checkpoint),
    }
    if on_event is not None:
        on_event(final)
    return FitResult(checkpoint=checkpoint, final=final, history=history)
