"""Checkpoint directories: strict round trip, named rejections, both prompt layouts, digest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from core.livemoments.digest import weights_digest
from core.livemoments.layout import MOTION_FILE, PROMPT_FILE, RANDOM_MARKER, CheckpointError
from core.livemoments.load import load_checkpoint
from core.livemoments.validate import validate_checkpoint

MAIN = Path("transformer/diffusion_pytorch_model.safetensors")


def test_random_checkpoint_has_the_published_layout(tiny_checkpoint: Path) -> None:
    for rel in (
        "transformer/config.json",
        MAIN,
        "transformer_ref/config.json",
        "transformer_ref/diffusion_pytorch_model.safetensors",
        MOTION_FILE,
        "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors",
        PROMPT_FILE,
        RANDOM_MARKER,
    ):
        assert (tiny_checkpoint / rel).is_file(), rel
    keys = load_file(str(tiny_checkpoint / MAIN)).keys()
    assert "transformer_blocks.0.attn.processor.point_proj.weight" in keys
    motion = torch.load(tiny_checkpoint / MOTION_FILE, weights_only=True)
    assert {"blocks.0.6.weight", "blocks.1.0.bias"} <= set(motion)
    report = validate_checkpoint(tiny_checkpoint)
    assert report.ok, report.errors
    assert report.random_weights
    assert set(report.found) >= {"transformer", "transformer_ref", "motion_encoder", "vae"}


def test_strict_load_round_trip(tiny_checkpoint: Path) -> None:
    models = load_checkpoint(tiny_checkpoint)
    saved = load_file(str(tiny_checkpoint / MAIN))
    loaded = models.transformer.state_dict()
    assert set(saved) == set(loaded)
    for key, value in saved.items():
        torch.testing.assert_close(loaded[key], value, rtol=0, atol=0)
    motion = torch.load(tiny_checkpoint / MOTION_FILE, weights_only=True)
    for key, value in motion.items():
        torch.testing.assert_close(models.motion_encoder.state_dict()[key], value)
    assert not any(p.is_meta for p in models.transformer_ref.parameters())
    assert models.prompt_embeds.shape == (1, 5, 32)
    assert models.random_weights and models.digest == weights_digest(tiny_checkpoint)


def _rewrite(path: Path, change) -> None:
    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path))


def test_wrong_shape_is_rejected_by_name(checkpoint_copy: Path) -> None:
    key = "transformer_blocks.1.attn.processor.point_proj.weight"
    _rewrite(checkpoint_copy / MAIN, lambda t: t.__setitem__(key, torch.zeros(16, 8)))
    report = validate_checkpoint(checkpoint_copy)
    assert not report.ok
    assert any(key in e and "[16, 8]" in e and "[16, 16]" in e for e in report.errors)
    with pytest.raises(CheckpointError, match=key.replace(".", r"\.")):
        load_checkpoint(checkpoint_copy)


def test_missing_and_unexpected_tensors_are_named(checkpoint_copy: Path) -> None:
    ref = checkpoint_copy / "transformer_ref/diffusion_pytorch_model.safetensors"

    def change(t: dict) -> None:
        del t["transformer_blocks.0.attn.to_k.weight"]
        t["bogus.weight"] = torch.zeros(1)

    _rewrite(ref, change)
    errors = " ".join(validate_checkpoint(checkpoint_copy).errors)
    assert "missing tensors: transformer_blocks.0.attn.to_k.weight" in errors
    assert "unexpected tensors: bogus.weight" in errors


def test_motion_encoder_mismatch_is_named(checkpoint_copy: Path) -> None:
    path = checkpoint_copy / MOTION_FILE
    state = torch.load(path, weights_only=True)
    state["blocks.1.0.weight"] = torch.zeros(16, 16, 3, 3)
    torch.save(state, path)
    errors = validate_checkpoint(checkpoint_copy).errors
    assert any("blocks.1.0.weight" in e for e in errors)


def test_missing_components_are_reported(checkpoint_copy: Path) -> None:
    (checkpoint_copy / MOTION_FILE).unlink()
    (checkpoint_copy / PROMPT_FILE).unlink()
    errors = " ".join(validate_checkpoint(checkpoint_copy).errors)
    assert "motion_encoder.pt: missing" in errors
    assert "lmd model embed-prompt" in errors


def test_fork_prompt_pt_files_are_accepted(checkpoint_copy: Path) -> None:
    tensors = load_file(str(checkpoint_copy / PROMPT_FILE))
    (checkpoint_copy / PROMPT_FILE).unlink()
    torch.save(tensors["prompt_embeds"], checkpoint_copy / "prompt_embeds.pt")
    torch.save(tensors["pooled_prompt_embeds"], checkpoint_copy / "pooled_prompt_embeds.pt")
    report = validate_checkpoint(checkpoint_copy)
    assert report.ok, report.errors
    assert report.prompt_source == "prompt_embeds.pt + pooled_prompt_embeds.pt"


def test_prompt_width_must_match_the_transformer(checkpoint_copy: Path) -> None:
    save_file(
        {"prompt_embeds": torch.zeros(1, 5, 31), "pooled_prompt_embeds": torch.zeros(1, 32)},
        str(checkpoint_copy / PROMPT_FILE),
    )
    assert any("width 31" in e for e in validate_checkpoint(checkpoint_copy).errors)


def test_configs_of_both_branches_must_agree(checkpoint_copy: Path) -> None:
    cfg_path = checkpoint_copy / "transformer_ref/config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["pos_embed_max_size"] = 64
    cfg_path.write_text(json.dumps(cfg))
    assert any(
        "differ in: pos_embed_max_size" in e for e in validate_checkpoint(checkpoint_copy).errors
    )


def test_digest_is_stable_and_follows_the_weights(
    checkpoint_copy: Path, tiny_checkpoint: Path
) -> None:
    before = weights_digest(checkpoint_copy)
    assert before == weights_digest(tiny_checkpoint)  # a copy keeps its identity
    algorithm, _, hexpart = before.partition(":")
    assert algorithm == "blake3-checkpoint" and len(hexpart) == 64  # the digest names its recipe
    key = "transformer_blocks.0.attn.to_q.weight"
    _rewrite(checkpoint_copy / MAIN, lambda t: t[key].add_(1.0))
    assert weights_digest(checkpoint_copy) != before


def test_model_check_and_init_commands(tiny_checkpoint: Path, tmp_path: Path, capsys) -> None:
    from daemon.cli import main

    assert main(["model", "check", str(tiny_checkpoint)]) == 0
    out = capsys.readouterr().out
    assert "RANDOM WEIGHTS" in out and weights_digest(tiny_checkpoint) in out.replace("\n", "")
    assert main(["model", "check", str(tmp_path / "nope")]) == 1
    target = tmp_path / "new"
    assert main(["model", "init", str(target), "--size", "tiny", "--seed", "3"]) == 0
    assert weights_digest(target) == weights_digest(tiny_checkpoint)
    assert main(["model", "init", str(target)]) == 1  # not empty
    assert main(["model", "embed-prompt", "--sd3", str(tmp_path), str(target)]) == 1


def test_unreadable_prompt_and_config_files_are_named_errors(checkpoint_copy: Path) -> None:
    """Damaged files make `validate_checkpoint` report, never raise (`lmd model check`)."""
    (checkpoint_copy / PROMPT_FILE).write_bytes(b"junk")
    errors = " ".join(validate_checkpoint(checkpoint_copy).errors)
    assert f"{PROMPT_FILE}: cannot read the prompt embeddings" in errors

    (checkpoint_copy / PROMPT_FILE).unlink()
    torch.save({"not": "a tensor"}, checkpoint_copy / "prompt_embeds.pt")
    torch.save(torch.zeros(1, 32), checkpoint_copy / "pooled_prompt_embeds.pt")
    errors = " ".join(validate_checkpoint(checkpoint_copy).errors)
    assert "prompt_embeds.pt: expected one tensor, found dict" in errors

    (checkpoint_copy / "prompt_embeds.pt").write_bytes(b"junk")
    errors = " ".join(validate_checkpoint(checkpoint_copy).errors)
    assert "prompt_embeds.pt: cannot read" in errors

    (checkpoint_copy / "vae/config.json").write_text("{")
    errors = " ".join(validate_checkpoint(checkpoint_copy).errors)
    assert "vae/config.json: unreadable config" in errors


def test_model_check_reports_a_damaged_prompt_file(checkpoint_copy: Path, capsys) -> None:
    from daemon.cli import main

    (checkpoint_copy / PROMPT_FILE).write_bytes(b"junk")
    assert main(["model", "check", str(checkpoint_copy)]) == 1
    assert "cannot read the prompt embeddings" in capsys.readouterr().err


def test_a_truncated_weights_file_is_caught_by_check_and_load(checkpoint_copy: Path) -> None:
    """An interrupted copy keeps a valid header: the size must still match what it describes."""
    path = checkpoint_copy / MAIN
    data = path.read_bytes()
    path.write_bytes(data[:-1000])
    errors = " ".join(validate_checkpoint(checkpoint_copy).errors)
    assert f"{MAIN.as_posix()}: not a complete safetensors file ({len(data) - 1000} bytes" in errors
    with pytest.raises(CheckpointError, match="not a complete safetensors file"):
        load_checkpoint(checkpoint_copy)
    with pytest.raises(CheckpointError, match="not a complete safetensors file"):
        weights_digest(checkpoint_copy)


def test_reading_a_damaged_weights_file_is_a_checkpoint_error(checkpoint_copy: Path) -> None:
    from core.livemoments.load import read_safetensors

    path = checkpoint_copy / MAIN
    path.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(CheckpointError, match="cannot read"):
        read_safetensors(path, torch.device("cpu"), torch.float32)


@pytest.mark.parametrize(
    ("key", "value"), [("qk_norm", "rms_norm"), ("dual_attention_layers", [0])]
)
def test_sd35_features_are_refused(checkpoint_copy: Path, key: str, value: object) -> None:
    """The processor reads raw K/V projections: with qk-norm (SD3.5) it would silently skip the
    norms, so such a checkpoint must be refused by name, whatever its tensors."""
    cfg_path = checkpoint_copy / "transformer/config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg[key] = value
    cfg_path.write_text(json.dumps(cfg))
    errors = validate_checkpoint(checkpoint_copy).errors
    assert any(f"transformer/config.json: {key} = " in e and "not supported" in e for e in errors)
    with pytest.raises(CheckpointError, match="not supported"):
        load_checkpoint(checkpoint_copy)


def test_a_damaged_motion_tensor_is_named_with_the_shape_expected(
    checkpoint_copy: Path, capsys
) -> None:
    """The widths are read off the tensors' shapes: a 1-element tensor in place of the first
    convolution must be reported by name and expected shape, not end in an IndexError."""
    from daemon.cli import main

    path = checkpoint_copy / MOTION_FILE
    state = torch.load(path, weights_only=True)
    state["blocks.0.0.weight"] = torch.zeros(1)
    torch.save(state, path)
    errors = validate_checkpoint(checkpoint_copy).errors
    assert any(
        "tensor blocks.0.0.weight has shape [1], expected [4, 2, 3, 3]" in e for e in errors
    ), errors
    assert main(["model", "check", str(checkpoint_copy)]) == 1
    assert "blocks.0.0.weight has shape [1]" in capsys.readouterr().err
    with pytest.raises(CheckpointError, match=r"blocks\.0\.0\.weight"):
        load_checkpoint(checkpoint_copy)


@pytest.mark.parametrize("key", ["blocks.0.4.weight", "blocks.0.4.bias", "blocks.1.0.bias"])
def test_every_tensor_the_widths_come_from_is_checked(checkpoint_copy: Path, key: str) -> None:
    path = checkpoint_copy / MOTION_FILE
    state = torch.load(path, weights_only=True)
    state[key] = torch.zeros(())  # a scalar: no dimension to read a width from
    torch.save(state, path)
    errors = validate_checkpoint(checkpoint_copy).errors
    assert any(f"tensor {key} has shape []" in e for e in errors), errors


def test_model_check_prints_the_largest_tile(tiny_checkpoint: Path, capsys) -> None:
    from daemon.cli import main

    assert validate_checkpoint(tiny_checkpoint).max_tile == 512
    assert main(["model", "check", str(tiny_checkpoint)]) == 0
    assert "largest tile    512 px" in capsys.readouterr().out


def test_the_digest_imports_neither_torch_nor_diffusers(tiny_checkpoint: Path) -> None:
    """The scanner digests the checkpoint for every job identity (core.registry's
    weights_digest): that must not cost a torch import in the scan."""
    import subprocess
    import sys

    code = (
        "import sys; from core.livemoments.digest import weights_digest as w;"
        f"print(w({str(tiny_checkpoint)!r}));"
        "print(sorted(m for m in ('torch', 'diffusers') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.split() == [weights_digest(tiny_checkpoint), "[]"]
