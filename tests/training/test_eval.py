"""`lmd train eval`: PSNR-Y/SSIM-Y per pair and on average, for any restorer or checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.images import resize
from core.livemoments.training.dataset import open_pair_set
from core.metrics import psnr_y, ssim_y
from tests.training.conftest import FitRun, lmd


def test_eval_scores_each_pair_and_the_mean(video_pairs: Path) -> None:
    code, text = lmd("train", "eval", "--pairs", str(video_pairs), "--restorer", "bicubic",
                     "--json")
    assert code == 0, text
    document = json.loads(text)
    assert document["restorer"] == "bicubic" and document["split"] == "all"
    rows, summary = document["pairs"], document["mean"]
    pair_set = open_pair_set(video_pairs)
    assert [r["id"] for r in rows] == [r.id for r in pair_set.records]
    for row, record in zip(rows, pair_set.records, strict=True):
        pair = pair_set.load(record)
        up = np.clip(resize(pair.lq, 64, 64, interpolation="bicubic"), 0, 1)
        # Scores are recomputed here from the files: the row holds the restorer's PSNR-Y and
        # SSIM-Y against hq, next to the bicubic baseline (the same images for `bicubic`).
        assert row["bicubic_psnr_y"] == pytest.approx(psnr_y(up, pair.hq), abs=1e-9)
        assert row["bicubic_ssim_y"] == pytest.approx(ssim_y(up, pair.hq), abs=1e-9)
        assert row["psnr_y"] == row["bicubic_psnr_y"]  # `bicubic` restores exactly so
        assert row["split"] == record.split
    assert summary["pairs"] == len(rows)
    assert summary["psnr_y"] == pytest.approx(np.mean([r["psnr_y"] for r in rows]))
    assert summary["ssim_y"] == pytest.approx(np.mean([r["ssim_y"] for r in rows]))


def test_eval_a_tuned_checkpoint_on_the_validation_split(fitted: FitRun, video_pairs: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    code, text = lmd("train", "eval", "--pairs", str(video_pairs), "--split", "val",
                     "--restorer", "livemoments", "-p", f"checkpoint={fitted.checkpoint}",
                     "-p", "tile=64", "-p", "overlap=0")
    assert code == 0, text
    val = [r for r in open_pair_set(video_pairs).records if r.split == "val"]
    assert len([ln for ln in text.splitlines() if "PSNR-Y" in ln]) == len(val) + 1
    assert f"mean over {len(val)} pairs" in text
    code, _ = lmd("train", "eval", "--pairs", str(video_pairs), "--split", "apart",
                  "--restorer", "bicubic")
    assert code == 1 and "no pairs in split 'apart'" in capsys.readouterr().err
    assert lmd("train", "eval", "--pairs", str(video_pairs), "--split", "bogus")[0] == 2
