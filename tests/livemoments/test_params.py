"""The livemoments parameter schema: what settings, `lmd doctor` and every request are held to."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from core.livemoments.params import max_tile, param_problems, tile_problems


def test_good_parameters_have_no_problems() -> None:
    assert param_problems({}) == []
    assert param_problems(
        {
            "tile": 512.0,  # a whole float from TOML or JSON is a whole number
            "overlap": 32,
            "tile_batch": 0,
            "seed": 2**63 - 1,
            "flow": "dis",
            "color_fix": False,
            "deterministic": True,
            "checkpoint": "/models/livemoments",
        }
    ) == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"tiles": 3}, "unknown parameter 'tiles'"),
        ({"device": "cuda"}, "set [restorer] device instead"),
        ({"tile": "big"}, "parameter tile must be an integer, got 'big'"),
        ({"tile": math.inf}, "parameter tile must be an integer, got inf"),
        ({"tile": 100}, "tile must be a positive multiple of 16, got 100"),
        ({"tile": 0}, "tile must be a positive multiple of 16, got 0"),
        ({"tile": 64, "overlap": 64}, "need 0 ≤ overlap < tile, got 64 and 64"),
        ({"overlap": -1}, "need 0 ≤ overlap < tile, got -1 and 1024"),
        ({"overlap": math.nan}, "parameter overlap must be an integer, got nan"),
        ({"tile_batch": 1.5}, "parameter tile_batch must be an integer"),
        ({"tile_batch": 65}, "tile_batch must be 0 (automatic) to 64, got 65"),
        ({"tile_batch": True}, "parameter tile_batch must be an integer, got True"),
        ({"seed": 2**70}, "seed must fit in 64 bits"),
        ({"flow": "farneback"}, "flow must be one of auto, raft, dis"),
        ({"color_fix": "no"}, "color_fix must be true or false, got 'no'"),
        ({"deterministic": 1}, "deterministic must be true or false, got 1"),
        ({"checkpoint": ""}, "checkpoint must be a directory path"),
        ({"checkpoint": 3}, "checkpoint must be a directory path"),
    ],
)
def test_each_bad_parameter_is_named(params: dict, message: str) -> None:
    problems = param_problems(params)
    assert len(problems) == 1 and message in problems[0], problems
    assert problems[0].startswith("livemoments: ")


def test_every_problem_is_reported_at_once() -> None:
    problems = param_problems({"tile": "x", "flow": "?", "color_fix": None, "bogus": 1})
    assert len(problems) == 4


def test_the_largest_tile_follows_the_checkpoint_config() -> None:
    from core.livemoments.config import SD3_MEDIUM_TRANSFORMER, SD3_VAE, TINY_TRANSFORMER, TINY_VAE

    # pos_embed_max_size patches × patch 2 × the VAE's 8 px per latent.
    assert max_tile(SD3_MEDIUM_TRANSFORMER, SD3_VAE) == 192 * 2 * 8 == 3072
    assert max_tile(TINY_TRANSFORMER, TINY_VAE) == 32 * 2 * 8 == 512
    assert tile_problems(512, TINY_TRANSFORMER, TINY_VAE) == []
    (problem,) = tile_problems(528, TINY_TRANSFORMER, TINY_VAE)
    assert "tile 528" in problem and "largest tile it can take is 512" in problem
    assert max_tile({**TINY_TRANSFORMER, "pos_embed_max_size": None}, TINY_VAE) is None


def test_the_schema_imports_neither_torch_nor_diffusers() -> None:
    """Settings loading and `lmd doctor` call it; they must not pay for torch."""
    code = (
        "import sys, core.livemoments.params as p; p.param_problems({'tile': 64});"
        "print(sorted(m for m in ('torch', 'diffusers') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"
