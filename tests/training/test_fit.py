"""`lmd train fit` on the tiny model: it learns, freezes what it must, publishes a checkpoint
that checks and restores, and resumes an interrupted run exactly."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from core.livemoments.training.trainable import branch
from tests.training.conftest import FIT, FitRun, fit_args, lmd

TRANSFORMERS = ("transformer", "transformer_ref")


def _weights(checkpoint: Path, sub: str) -> dict[str, torch.Tensor]:
    return load_file(str(checkpoint / sub / "diffusion_pytorch_model.safetensors"))


def test_json_lines_and_the_validation_loss_falls(fitted: FitRun) -> None:
    evals = [e for e in fitted.events if e["event"] == "eval"]
    final = fitted.events[-1]
    assert [e["step"] for e in evals] == [0, 8, 16, 24]
    assert final["event"] == "done" and final["steps"] == FIT["steps"]
    assert final["val_loss_start"] == evals[0]["val_loss"]
    assert final["val_loss_end"] == evals[-1]["val_loss"]
    # The validation loss uses fixed t and ε per held-out pair, so a drop is learning, not luck.
    assert final["val_loss_end"] < 0.97 * final["val_loss_start"], final
    assert all(np.isfinite(e["val_psnr_y"]) for e in evals)
    assert evals[0]["train_loss"] is None and all(e["train_loss"] > 0 for e in evals[1:])
    assert final["train_pairs"] >= 3 and final["val_pairs"] >= 1
    assert final["checkpoint"] == str(fitted.checkpoint)


def test_frozen_weights_stay_bit_identical(fitted: FitRun, tiny_init: Path) -> None:
    for name in ("config.json", "diffusion_pytorch_model.safetensors"):
        assert (fitted.checkpoint / "vae" / name).read_bytes() == (
            tiny_init / "vae" / name
        ).read_bytes()
    assert (fitted.checkpoint / "prompt_embeds.safetensors").read_bytes() == (
        tiny_init / "prompt_embeds.safetensors"
    ).read_bytes()
    for sub in TRANSFORMERS:
        before, after = _weights(tiny_init, sub), _weights(fitted.checkpoint, sub)
        assert set(before) == set(after)
        changed = {k for k in before if not torch.equal(before[k], after[k])}
        frozen = {k for k in before if branch(k) != "image"}
        assert frozen and not (changed & frozen), sorted(changed & frozen)[:5]
        # The image branch learnt: most of its tensors moved (the ReferenceNet's output head
        # gets no gradient, its output being unused).
        image = set(before) - frozen
        assert len(changed) > 0.5 * len(image), (sub, len(changed), len(image))
    motion_before = torch.load(tiny_init / "motion_encoder.pt", weights_only=True)
    motion_after = torch.load(fitted.checkpoint / "motion_encoder.pt", weights_only=True)
    assert any(not torch.equal(motion_before[k], motion_after[k]) for k in motion_before)


def test_the_tuned_checkpoint_checks_and_restores(fitted: FitRun, tiny_init: Path,
                                                   video_pairs: Path) -> None:
    import core
    from core.api import RestoreRequest
    from core.livemoments.training.dataset import open_pair_set

    code, text = lmd("model", "check", str(fitted.checkpoint))
    assert code == 0, text
    assert "RANDOM WEIGHTS" in text  # tuned from random weights: still not LiveMoments
    pair_set = open_pair_set(video_pairs)
    pair = pair_set.load(pair_set.records[0])
    outputs = []
    for checkpoint in (fitted.checkpoint, tiny_init):
        request = RestoreRequest(
            target=pair.lq, reference=pair.ref, reference_lq=pair.ref_lq,
            restorer="livemoments",
            params={"checkpoint": str(checkpoint), "tile": 64, "overlap": 0}, seed=1,
        )
        result = core.restore(request)
        assert result.image.shape == pair.hq.shape and np.isfinite(result.image).all()
        assert result.diagnostics.extra["weights_digest"].startswith("blake3-checkpoint:")
        outputs.append(result.image)
    # The restorer really ran the tuned weights (colour fix and clipping keep differences small).
    assert np.abs(outputs[0] - outputs[1]).max() > 1e-3


def test_an_interrupted_run_resumes_to_the_same_model(
    tiny_init: Path, video_pairs: Path, tmp_path: Path
) -> None:
    from core.livemoments.digest import weights_digest
    from core.livemoments.training.fit import fit
    from core.livemoments.training.trainer import FitOptions

    short = {**FIT, "steps": 6, "eval_every": 3, "seed": 3, "val_restore": 0}
    whole = fit(tiny_init, [video_pairs], tmp_path / "whole", FitOptions(**short))
    out = tmp_path / "run"
    # Saving every 2 steps instead of every 3 changes no number (save_every is not part of the
    # run's identity): the run stops at 5 and resumes from 4, between two evaluations.
    options = FitOptions(**short, save_every=2)

    class Stop(Exception):
        pass

    def stop_at_5(step: int, _loss: float) -> None:
        if step == 5:
            raise Stop

    with pytest.raises(Stop):
        fit(tiny_init, [video_pairs], out, options, on_step=stop_at_5)
    assert not (out / "checkpoint").exists()
    result = fit(tiny_init, [video_pairs], out, options)
    assert result.final["resumed_from"] == 4  # the last save before the stop
    # Same trained tensors, bit for bit (float32 on the CPU; every random draw of a step comes
    # from the run's generator, saved with AdamW's state), hence the same digest.
    for sub in TRANSFORMERS:
        ours, theirs = _weights(out / "checkpoint", sub), _weights(whole.checkpoint, sub)
        assert all(torch.equal(ours[k], theirs[k]) for k in theirs), sub
    assert weights_digest(out / "checkpoint") == weights_digest(whole.checkpoint)
    for key in ("step", "val_loss", "val_psnr_y", "train_loss"):
        assert [e[key] for e in result.history] == [e[key] for e in whole.history], key
    assert [e["step"] for e in whole.history] == [0, 3, 6]


def test_a_run_with_other_settings_is_refused(fitted: FitRun, tiny_init: Path,
                                              video_pairs: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    shutil.copytree(fitted.out, out)
    before = (out / "train_state.pt").read_bytes()
    args = fit_args(tiny_init, video_pairs, out)
    args[args.index("--lr") + 1] = "0.002"
    code, _ = lmd(*args)
    assert code == 1
    assert (out / "train_state.pt").read_bytes() == before
    # Asking for fewer steps than the run has done is refused too.
    args = fit_args(tiny_init, video_pairs, out)
    args[args.index("--steps") + 1] = "4"
    assert lmd(*args)[0] == 1


def test_bad_inputs_are_named_errors(tiny_init: Path, video_pairs: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = lmd("train", "fit", "--init", str(tmp_path), "--pairs", str(video_pairs),
                  "-o", str(tmp_path / "a"))
    assert code == 1 and "not a usable checkpoint" in capsys.readouterr().err
    code, _ = lmd("train", "fit", "--init", str(tiny_init), "--pairs", str(tmp_path),
                  "-o", str(tmp_path / "b"))
    assert code == 1 and "manifest.json" in capsys.readouterr().err
    code, _ = lmd("train", "fit", "--init", str(tiny_init), "--pairs", str(video_pairs),
                  "-o", str(tmp_path / "c"), "--tile", "128")
    assert code == 1 and "larger than" in capsys.readouterr().err
    code, _ = lmd("train", "fit", "--init", str(tiny_init), "--pairs", str(video_pairs),
                  "-o", str(tmp_path / "d"), "--mixed-precision", "fp8")
    assert code == 1 and "mixed precision" in capsys.readouterr().err
