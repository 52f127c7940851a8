"""The fit loop: bridge matching on pair sets, full or LoRA fine-tuning, exact resumption.

`Trainer` owns the networks during training: it sets which weights learn (`trainable`), makes
the optimizer (AdamW, constant learning rate, gradients clipped to norm 1 as in diffusers'
training scripts) and takes steps. One step draws, from the run's own generator and in this
order, the batch's pairs (with replacement), each pair's crop offset, each item's t and ε;
encodes, takes flows and motion as inference does (`forward`), and regresses the bridge's
velocity (`objective`). Nothing else in a step is random, so saving the generator with the
weights and the optimizer makes a resumed run take the very same steps.

`fit` runs a whole training from files: pair sets in, a run folder out (its resumable state,
`state`), evaluations every `eval_every` steps on held-out pairs (`evaluate`), and the trained
model as a checkpoint in the published layout (`publish`) at the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from core.flow import FlowEstimator, make_flow_estimator
from core.livemoments.load import LiveMomentsModels
from core.livemoments.training.dataset import PairImages, PairRecord, PairSet, pick_validation
from core.livemoments.training.forward import TrainingNetworks, tile_inputs
from core.livemoments.training.objective import (
    bridge_loss,
    bridge_state,
    sample_t,
    velocity_target,
)
from core.livemoments.training.state import TrainState, capture_rng, restore_rng
from core.livemoments.training.trainable import (
    add_lora,
    freeze,
    select_image_branch,
    trainable_parameters,
)

MIXED_PRECISION = {"no": None, "bf16": torch.bfloat16}


class TrainingError(ValueError):
    """Training cannot start or continue; the message says why."""


@dataclass(slots=True)
class FitOptions:
    """Settings of a run. `identity()` holds those that change the numbers."""

    steps: int = 1000
    batch: int = 8
    lr: float = 5e-5
    tile: int | None = None
    """Training tile (px); default: the pair sets' tile (1024 for the paper's recipe)."""
    lora_rank: int | None = None
    grad_checkpointing: bool = False
    mixed_precision: str = "no"
    eval_every: int = 100
    save_every: int | None = None
    """Steps between saved states (default: eval_every)."""
    val_fraction: float = 0.1
    """Pairs held out when no pair set has a validation split of its own."""
    val_restore: int = 4
    """Held-out tiles restored (six steps) for PSNR-Y at each evaluation; 0: none."""
    seed: int = 0
    flow: str = "auto"
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    device: str = "auto"

    def check(self) -> None:
        problems = []
        if self.steps < 0 or self.batch < 1 or self.eval_every < 1:
            problems.append("steps must be ≥ 0, batch and eval_every ≥ 1")
        if not (self.lr > 0 and self.lr < 1):
            problems.append(f"learning rate must lie in (0, 1), got {self.lr}")
        if self.lora_rank is not None and self.lora_rank < 1:
            problems.append(f"LoRA rank must be ≥ 1, got {self.lora_rank}")
        if self.mixed_precision not in MIXED_PRECISION:
            problems.append(f"mixed precision must be one of {', '.join(MIXED_PRECISION)}")
        if self.flow not in ("auto", "dis", "raft"):
            problems.append(f"flow must be auto, dis or raft, got {self.flow!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            problems.append(f"validation fraction must lie in [0, 1), got {self.val_fraction}")
        if self.save_every is not None and self.save_every < 1:
            problems.append("save_every must be ≥ 1")
        if problems:
            raise TrainingError("; ".join(problems))

    def identity(self) -> dict[str, Any]:
        keep = ("batch", "lr", "tile", "lora_rank", "mixed_precision", "val_fraction",
                "seed", "flow", "weight_decay", "max_grad_norm")
        return {k: v for k, v in asdict(self).items() if k in keep}


class Trainer:
    """The networks of `models`, set up for training, and one optimizer step at a time."""

    def __init__(
        self, models: LiveMomentsModels, options: FitOptions, flow: FlowEstimator, tile: int
    ) -> None:
        self.models = models
        self.options = options
        self.tile = tile
        freeze(models.vae)
        for net in (models.transformer, models.transformer_ref):
            if options.lora_rank:
                add_lora(net, options.lora_rank)
            else:
                select_image_branch(net)
            if options.grad_checkpointing:
                net.enable_gradient_checkpointing()
            net.train()
        models.motion_encoder.float().requires_grad_(True).train()
        # The capture hooks go on after LoRA wrapped the projections (they hook the wrappers).
        self.networks = TrainingNetworks(models, flow, MIXED_PRECISION[options.mixed_precision])
        self.parameters = list(
            trainable_parameters(
                {
                    "transformer": models.transformer,
                    "transformer_ref": models.transformer_ref,
                    "motion_encoder": models.motion_encoder,
                }
            )
        )
        self.optimizer = torch.optim.AdamW(
            [p for _, p in self.parameters], lr=options.lr, weight_decay=options.weight_decay
        )
        self.generator = torch.Generator().manual_seed(options.seed)

    @property
    def trainable_count(self) -> int:
        return sum(p.numel() for _, p in self.parameters)

    def close(self) -> None:
        self.networks.close()

    def draw_batch(self, count: int) -> list[int]:
        """Indices of the next batch's pairs among `count` (with replacement)."""
        return [int(i) for i in torch.randint(count, (self.options.batch,),
                                              generator=self.generator)]

    def step(self, pairs: Sequence[PairImages]) -> float:
        """One optimizer step on `pairs`; returns the batch's loss before the update."""
        g, device = self.generator, self.networks.device
        tiles = []
        for pair in pairs:
            room = pair.hq.shape[0] - self.tile + 1
            y, x = (int(v) for v in torch.randint(room, (2,), generator=g))
            tiles.append(tile_inputs(pair, self.tile, (y, x)))
        nets = self.networks
        z_h = nets.encode([t.hq for t in tiles])
        z_l = nets.encode([t.lq_up for t in tiles])
        z_ref = nets.encode([t.ref for t in tiles])
        flows = nets.flows(tiles)
        t = sample_t(len(tiles), g, device)
        noise = torch.randn(z_h.shape, generator=g, dtype=torch.float32).to(device)
        prediction = nets.predict(
            bridge_state(z_h, z_l, noise, t), t, z_ref, nets.motion(flows)
        )
        loss = bridge_loss(prediction, velocity_target(z_h, z_l, noise, t))
        if not torch.isfinite(loss):
            raise TrainingError(f"the loss is {float(loss)}: training diverged")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for _, p in self.parameters], self.options.max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        nets.release()
        return float(loss.detach())

    # ------------------------------------------------------------------ resumable state

    def state(
        self, step: int, history: list[dict[str, Any]], pending: list[float]
    ) -> TrainState:
        cpu, cuda = capture_rng()
        return TrainState(
            step=step,
            trainable={name: p.detach() for name, p in self.parameters},
            optimizer=self.optimizer.state_dict(),
            generator=self.generator.get_state(),
            history=history,
            pending_losses=list(pending),
            torch_rng=cpu,
            cuda_rng=cuda,
        )

    def restore(self, state: TrainState) -> None:
        names = [name for name, _ in self.parameters]
        if sorted(names) != sorted(state.trainable):
            missing = sorted(set(names) - set(state.trainable))[:3]
            raise TrainingError(
                f"the saved state trains other tensors than this run (e.g. {missing}); "
                "was it made by another lmd version?"
            )
        with torch.no_grad():
            for name, param in self.parameters:
                saved = state.trainable[name]
                if saved.shape != param.shape:
                    raise TrainingError(f"saved tensor {name} has shape {tuple(saved.shape)}")
                param.copy_(saved.to(param.device, param.dtype))
        self.optimizer.load_state_dict(state.optimizer)
        self.generator.set_state(state.generator)
        restore_rng(state.torch_rng, state.cuda_rng)


# --------------------------------------------------------------------------- pair selection


@dataclass(slots=True)
class PairPool:
    """Training and validation pairs across the run's pair sets."""

    train: list[tuple[PairSet, PairRecord]]
    val: list[tuple[PairSet, PairRecord]]
    held_out_by_fit: bool = False

    def load(self, entry: tuple[PairSet, PairRecord]) -> PairImages:
        return entry[0].load(entry[1])


def split_pairs(sets: Sequence[PairSet], val_fraction: float, seed: int) -> PairPool:
    """The sets' own train/val splits; when none has validation pairs, `val_fraction` of the
    training pairs (whole groups, `dataset.pick_validation`) are held out here."""
    train = [(s, r) for s in sets for r in s.split("train")]
    val = [(s, r) for s in sets for r in s.split("val")]
    held = False
    if not val:
        groups = [f"{i}/{r.group}" for i, s in enumerate(sets) for r in s.split("train")]
        chosen = set(pick_validation(groups, val_fraction or 0.1, seed))
        val = [e for i, e in enumerate(train) if i in chosen]
        train = [e for i, e in enumerate(train) if i not in chosen]
        held = True
    if not train:
        raise TrainingError("no training pairs (every pair is held out or kept apart)")
    if not val:
        raise TrainingError("no validation pairs: fit needs at least two pairs")
    return PairPool(train, val, held)


def make_flow(kind: str, models: LiveMomentsModels) -> tuple[str, FlowEstimator]:
    """The local flow the restorer would use with these models ("auto": RAFT when the
    checkpoint ships its weights, else DIS), and its resolved name."""
    if kind == "auto":
        kind = "raft" if models.raft_weights is not None else "dis"
    if kind == "raft":
        if models.raft_weights is None:
            raise TrainingError("flow 'raft' needs raft weights in the initial checkpoint")
        try:
            return kind, make_flow_estimator(
                "raft", weights_path=models.raft_weights, device=str(models.device)
            )
        except ImportError:
            raise TrainingError(
                "RAFT flow needs torchvision (pip install 'lmd[raft]'), or use --flow dis"
            ) from None
    return kind, make_flow_estimator(kind)


EventCallback = Callable[[dict[str, Any]], None]
StepCallback = Callable[[int, float], None]


def run_steps(
    trainer: Trainer,
    pool: PairPool,
    evaluate: Callable[[int, float | None], dict[str, Any]],
    save: Callable[[int, list[dict[str, Any]], list[float]], None],
    start: int,
    history: list[dict[str, Any]],
    pending: list[float] | None = None,
    on_event: EventCallback | None = None,
    on_step: StepCallback | None = None,
) -> list[dict[str, Any]]:
    """Steps start+1 … steps; evaluations and saves on their intervals and at the end.

    `on_step(step, loss)` runs after each step (progress, cancellation: what it raises stops
    the run; the last saved state stays). Returns the evaluation history.
    """
    options = trainer.options
    save_every = options.save_every or options.eval_every
    losses: list[float] = list(pending or [])
    if not history:
        record = evaluate(0, None)
        history.append(record)
        if on_event is not None:
            on_event(record)
    for step in range(start + 1, options.steps + 1):
        picks = trainer.draw_batch(len(pool.train))
        loss = trainer.step([pool.load(pool.train[i]) for i in picks])
        losses.append(loss)
        if on_step is not None:
            on_step(step, loss)
        last = step == options.steps
        if step % options.eval_every == 0 or last:
            started = time.perf_counter()
            record = evaluate(step, sum(losses) / len(losses) if losses else None)
            record["eval_seconds"] = round(time.perf_counter() - started, 3)
            losses = []
            history.append(record)
            if on_event is not None:
                on_event(record)
        if step % save_every == 0 or last:
            save(step, history, losses)
    return history


__all__ = [
    "FitOptions",
    "PairPool",
    "Trainer",
    "TrainingError",
    "make_flow",
    "run_steps",
    "split_pairs",
]
