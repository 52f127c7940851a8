"""Shared fixtures for training tests, built once per session: a tiny random checkpoint, a short
synthetic clip, a pair set cut from it by `lmd train pairs`, and one `lmd train fit --json` run
on it that several tests read (and the resume test reproduces)."""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

FPS = 30.0

FIT = {
    "steps": 24,
    "batch": 2,
    "lr": 1e-3,  # the paper's 5e-5 barely moves a random tiny model in a few dozen steps
    "tile": 32,
    "eval_every": 8,
    "val_restore": 1,
    "seed": 0,
}
"""The session's fit run; `tests/training/test_fit.py` reruns it interrupted and resumed."""


def texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth random RGB texture, uint8 (blocky noise upsampled bicubically)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, h // 6), max(2, w // 6), 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC))


def panning_frames(n: int = 20, size: int = 96, step: int = 1, seed: int = 0) -> list[np.ndarray]:
    """`n` frames of a texture moving `step` px per frame down and right."""
    tex = texture(size + step * n, size + step * n, seed)
    return [tex[i * step : i * step + size, i * step : i * step + size].copy() for i in range(n)]


def lmd(*args: str) -> tuple[int, str]:
    """Run `lmd ARGS` in-process; returns the exit code and what it printed on stdout."""
    from daemon.cli import main

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(list(args))
    return code, buffer.getvalue()


@contextlib.contextmanager
def one_thread():
    """The tiny networks are latency-bound; two OpenMP threads on a loaded machine only spin."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    with one_thread():
        yield


@pytest.fixture(scope="session")
def tiny_init(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from core.livemoments.write import write_random_checkpoint

    return write_random_checkpoint(tmp_path_factory.mktemp("train") / "init", "tiny", seed=5)


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from daemon.library.synth import encode_video

    path = tmp_path_factory.mktemp("clip") / "pan.mp4"
    path.write_bytes(encode_video(panning_frames(), FPS, "mp4"))
    return path


@pytest.fixture(scope="session")
def video_pairs(tmp_path_factory: pytest.TempPathFactory, clip: Path) -> Path:
    out = tmp_path_factory.mktemp("pairs") / "video"
    code, _ = lmd("train", "pairs", "--from-video", str(clip), "-o", str(out), "--tile", "64",
                  "--stride", "3", "--val-fraction", "0.25", "--seed", "7")
    assert code == 0
    return out


@dataclass(frozen=True)
class FitRun:
    out: Path
    events: list[dict]

    @property
    def checkpoint(self) -> Path:
        return self.out / "checkpoint"


def fit_args(init: Path, pairs: Path, out: Path) -> list[str]:
    args = ["train", "fit", "--init", str(init), "--pairs", str(pairs), "-o", str(out), "--json"]
    for key, value in FIT.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return args


@pytest.fixture(scope="session")
def fitted(tmp_path_factory: pytest.TempPathFactory, tiny_init: Path, video_pairs: Path) -> FitRun:
    out = tmp_path_factory.mktemp("fit") / "run"
    with one_thread():
        code, text = lmd(*fit_args(tiny_init, video_pairs, out))
    assert code == 0, text
    return FitRun(out, [json.loads(line) for line in text.splitlines()])
