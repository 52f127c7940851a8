"""Fit's own checkpoints: everything needed to continue a run exactly where it stopped.

A run folder holds `run.json` (what the run is: initial checkpoint and its digest, pair sets and
their manifests' digests, every setting that changes the numbers) and `train_state.pt`: the step,
the trained tensors, the optimizer's state, the state of the run's random generator (the loop
draws pair order, crops, t and ε from it alone), the evaluation history and the training losses
since the last evaluation. Frozen weights are
not stored: they come from the initial checkpoint again, whose digest must match.

Continuing a run with the same settings gives the same trained tensors as never stopping (tests
hold them bitwise equal on the CPU). Settings that do not change the numbers (step count,
evaluation and save intervals, gradient checkpointing, --json) may differ between the two
invocations; any other difference is refused with the settings named, since silently continuing
under other settings would give a model no single command describes.

Files are written under temporary names and renamed into place: an interruption during a save
leaves the previous state whole.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from core.livemoments.atomic_file import replace_file

RUN_FILE = "run.json"
STATE_FILE = "train_state.pt"
STATE_VERSION = 1


class RunMismatch(ValueError):
    """The run folder belongs to a run with other settings."""


def write_run(folder: Path, identity: Mapping[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps(dict(identity), indent=2, sort_keys=True) + "\n"
    replace_file(folder / RUN_FILE, lambda p: p.write_text(text))


def check_run(folder: Path, identity: Mapping[str, Any]) -> bool:
    """True when `folder` holds a run with this identity, False when it holds none; a run with
    another identity is a RunMismatch naming the settings that differ."""
    path = folder / RUN_FILE
    if not path.is_file():
        return False
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RunMismatch(f"{path}: unreadable ({exc})") from None
    current = json.loads(json.dumps(dict(identity)))  # the same JSON normalisation
    differ = sorted(k for k in set(stored) | set(current) if stored.get(k) != current.get(k))
    if differ:
        details = "; ".join(f"{k}: {stored.get(k)!r} → {current.get(k)!r}" for k in differ)
        raise RunMismatch(
            f"{folder} holds a run with other settings ({details}); "
            "use another output folder, or the same settings to continue it"
        )
    return True


@dataclass(slots=True)
class TrainState:
    """What `train_state.pt` holds."""

    step: int
    trainable: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    generator: torch.Tensor
    history: list[dict[str, Any]] = field(default_factory=list)
    pending_losses: list[float] = field(default_factory=list)
    """Training losses since the last evaluation (its `train_loss` averages them)."""
    torch_rng: torch.Tensor | None = None
    cuda_rng: list[torch.Tensor] | None = None


def save_state(folder: Path, state: TrainState) -> Path:
    payload = {
        "version": STATE_VERSION,
        "step": state.step,
        "trainable": {k: v.detach().cpu() for k, v in state.trainable.items()},
        "optimizer": state.optimizer,
        "generator": state.generator,
        "history": json.dumps(state.history),
        "pending_losses": json.dumps(state.pending_losses),
        "torch_rng": state.torch_rng,
        "cuda_rng": state.cuda_rng,
    }
    path = folder / STATE_FILE
    replace_file(path, lambda p: torch.save(payload, p))
    return path


def load_state(folder: Path) -> TrainState | None:
    """The saved state, or None when the folder has none."""
    path = folder / STATE_FILE
    if not path.is_file():
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling raises many types; all mean "not a usable state"
        raise RunMismatch(f"{path}: cannot read the training state ({exc})") from None
    if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
        raise RunMismatch(f"{path}: not a training state of this lmd version")
    return TrainState(
        step=int(data["step"]),
        trainable=dict(data["trainable"]),
        optimizer=data["optimizer"],
        generator=data["generator"],
        history=json.loads(data.get("history") or "[]"),
        pending_losses=json.loads(data.get("pending_losses") or "[]"),
        torch_rng=data.get("torch_rng"),
        cuda_rng=data.get("cuda_rng"),
    )


def capture_rng() -> tuple[torch.Tensor, list[torch.Tensor] | None]:
    """The process's global torch RNG states (the loop does not draw from them, but a layer
    that does, such as dropout in a future diffusers, would then resume exactly too)."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    return torch.get_rng_state(), cuda


def restore_rng(cpu: torch.Tensor | None, cuda: list[torch.Tensor] | None) -> None:
    if cpu is not None:
        torch.set_rng_state(cpu)
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
