"""bench/train_gpu.py says clearly that it needs a GPU, and exits 2, where there is none."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "bench" / "train_gpu.py"


def test_without_a_gpu_it_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present: the benchmark would run")
    spec = importlib.util.spec_from_file_location("bench_train_gpu", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main([]) == 2
    captured = capsys.readouterr()
    assert "no CUDA GPU" in captured.err and captured.out == ""
