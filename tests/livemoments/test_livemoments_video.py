"""`livemoments-video` end to end with the tiny random checkpoint on the CPU: frames in, frames
out; the motion guidance lowers the latent warping error it targets; strength 0 is the
per-frame still restoration bit for bit; bad parameters are refused with a reason."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import core
from core.api import RestoreError, RestoreRequest
from core.video import (
    ClipRequest,
    Keyframe,
    available_clip_restorers,
    get_clip_restorer,
    restore_clip,
    validate_clip_params,
)

FRAMES = 4
SIZE = (96, 80)  # height, width: 2×2 tiles of 64 px overlapping by 16 and more
STEP_PX = 2.0  # the scene moves this many pixels right per frame
TILES = {"tile": 64, "overlap": 16}


def _scene(height: int, width: int, shift: float, scale: float = 1.0) -> np.ndarray:
    """A smooth coloured texture, `shift` frame pixels to the right, sampled `scale`× finer."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32) / scale
    xx = xx - shift
    base = (0.5 + 0.25 * np.sin(xx / 5.0) * np.cos(yy / 4.0)
            + 0.1 * np.sin(xx / 2.3 + yy / 3.1))[..., None]
    return np.clip(base * np.array([1.0, 0.8, 0.6], np.float32), 0.0, 1.0)


def _u8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread_for_the_module() -> Any:
    """The conftest's single-thread fixture is per test, and module fixtures are built before
    it: without this the shared restorations ran two-threaded (slower on the loaded machine,
    and summed in another order than the per-test restorations they are compared with)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def clip() -> dict[str, Any]:
    frames = [_u8(_scene(*SIZE, STEP_PX * i)) for i in range(FRAMES)]
    key = _u8(_scene(2 * SIZE[0], 2 * SIZE[1], 0.0, scale=2.0))  # frame 0 at twice the size
    return {"frames": frames, "key": key}


@dataclass
class Run:
    frames: list[np.ndarray]
    errors: list[float | None]
    restorer: Any


def _run(clip: dict[str, Any], checkpoint: Path, **params: Any) -> Run:
    restorer = get_clip_restorer("livemoments-video")
    request = ClipRequest(
        frames=iter(clip["frames"]),
        keyframes=[Keyframe(clip["key"], 0)],
        restorer="livemoments-video",
        frame_count=FRAMES,
        params={"checkpoint": str(checkpoint), **TILES, **params},
    )
    frames = list(restore_clip(request, restorer=restorer))
    return Run(frames, restorer.diagnostics.extra["latent_warping_error"], restorer)


@pytest.fixture(scope="module")
def plain(clip: dict[str, Any], tiny_checkpoint: Path) -> Run:
    return _run(clip, tiny_checkpoint, guidance_strength=0.0)


@pytest.fixture(scope="module")
def guided(clip: dict[str, Any], tiny_checkpoint: Path) -> Run:
    return _run(clip, tiny_checkpoint)  # the default strength, 0.2


def test_restores_every_frame_at_the_output_size(
    clip: dict[str, Any], guided: Run, tiny_checkpoint: Path
) -> None:
    assert "livemoments-video" in available_clip_restorers()
    assert len(guided.frames) == FRAMES
    for frame in guided.frames:
        assert frame.shape == (*SIZE, 3) and frame.dtype == np.uint8
    diag = guided.restorer.diagnostics
    assert diag.frames == FRAMES and diag.output_size == SIZE
    assert diag.extra["random_weights"] is True and diag.timings["denoise"] > 0
    assert all(c is not None and 0.5 < c <= 1.0 for c in diag.extra["neighbour_confidence"][1:])
    progress: list[float] = []
    restorer = get_clip_restorer("livemoments-video")
    request = ClipRequest(frames=iter(clip["frames"][:2]), keyframes=[Keyframe(clip["key"], 0)],
                          frame_count=2, scale=2.0, progress=lambda f, _s: progress.append(f),
                          params={"checkpoint": str(tiny_checkpoint), **TILES})
    doubled = list(restore_clip(request, restorer=restorer))
    assert [f.shape for f in doubled] == [(2 * SIZE[0], 2 * SIZE[1], 3)] * 2
    assert progress == sorted(progress) and progress[-1] == 1.0


def test_guidance_lowers_the_latent_warping_error(plain: Run, guided: Run) -> None:
    assert plain.errors[0] is None and guided.errors[0] is None  # no predecessor
    without = float(np.mean(plain.errors[1:]))
    with_guidance = float(np.mean(guided.errors[1:]))
    # At strength 0.2 at most 0.8^6 ≈ 0.26 of the discrepancy would be left if the network
    # neither pulled back nor helped; frame by frame, not only on average.
    assert with_guidance < 0.26 * without, (without, with_guidance)
    assert all(g < p for g, p in zip(guided.errors[1:], plain.errors[1:], strict=True))
    # The outputs differ only by what the guidance moved: the first frame is the same.
    np.testing.assert_array_equal(guided.frames[0], plain.frames[0])
    assert any(not np.array_equal(g, p) for g, p in zip(guided.frames, plain.frames,
                                                         strict=True))


def test_strength_zero_is_the_still_pipeline_bit_for_bit(
    clip: dict[str, Any], plain: Run, tiny_checkpoint: Path
) -> None:
    from core.video.livemoments_video import keyframe_reference

    still = core.get_restorer("livemoments", checkpoint=tiny_checkpoint)
    finals: dict[int, Any] = {}

    def keep_final(tiles: Any, state: Any) -> None:
        if state.is_last:
            for row, tile in enumerate(tiles):
                finals[tile.index] = state.latent[row].clone()

    reference = keyframe_reference(clip["key"], SIZE)
    for frame, restored in zip(clip["frames"], plain.frames, strict=True):
        request = RestoreRequest(target=frame, reference=reference, restorer="livemoments",
                                 params=dict(TILES))
        expected = still.restore(request, on_step_end=keep_final).image
        np.testing.assert_array_equal(restored, _u8(expected))
    # A hook that changes nothing changes nothing: the same as the still restorer called plainly.
    np.testing.assert_array_equal(still.restore(request).image, expected)
    # Exact below the 8-bit output too: the last frame's final latents are the same tensors.
    kept = plain.restorer.guide.latents
    assert sorted(kept) == sorted(finals) and len(kept) == 4
    for index, latent in finals.items():
        assert latent.equal(kept[index])


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"guidance_strength": 1.5}, "guidance_strength must be a number from 0"),
        ({"guidance_strength": "strong"}, "guidance_strength must be a number from 0"),
        ({"guidance_strength": float("nan")}, "guidance_strength must be a number from 0"),
        ({"guidance_strength": True}, "guidance_strength must be a number from 0"),
        ({"tile": 100}, "livemoments-video: tile must be a positive multiple of 16"),
        ({"strenght": 0.3}, "unknown parameter 'strenght'"),
    ],
)
def test_bad_parameters_are_refused_with_a_reason(
    clip: dict[str, Any], tiny_checkpoint: Path, params: dict[str, Any], reason: str
) -> None:
    problems = validate_clip_params("livemoments-video", params)
    assert len(problems) == 1 and reason in problems[0]
    request = ClipRequest(frames=iter(clip["frames"]), keyframes=[Keyframe(clip["key"], 0)],
                          params={"checkpoint": str(tiny_checkpoint), **params})
    with pytest.raises(RestoreError, match=reason.split(":")[-1].strip()):
        get_clip_restorer("livemoments-video").restore_clip(request)  # before any frame
    with pytest.raises(RestoreError, match=reason.split(":")[-1].strip()):
        get_clip_restorer("livemoments-video", **params)


def test_missing_weights_and_bad_scale_are_refused(clip: dict[str, Any],
                                                   tiny_checkpoint: Path) -> None:
    restorer = get_clip_restorer("livemoments-video")
    keys = [Keyframe(clip["key"], 0)]
    with pytest.raises(RestoreError, match="checkpoint=DIR"):
        restorer.restore_clip(ClipRequest(frames=iter(clip["frames"]), keyframes=keys))
    with pytest.raises(RestoreError, match="beyond the keyframe's resolution"):
        next(restorer.restore_clip(ClipRequest(
            frames=iter(clip["frames"]), keyframes=keys, scale=3.0,
            params={"checkpoint": str(tiny_checkpoint), **TILES})))
    assert validate_clip_params("livemoments-video", {"guidance_strength": 0.5}) == []


def test_schema_default_is_the_guidance_default() -> None:
    from core.livemoments.video_guidance import DEFAULT_STRENGTH
    from core.video.livemoments_params import DEFAULT_GUIDANCE_STRENGTH

    assert DEFAULT_GUIDANCE_STRENGTH == DEFAULT_STRENGTH


def test_weights_digest_is_the_checkpoints(guided: Run, tiny_checkpoint: Path) -> None:
    """A video job's identity takes the weights' digest: the checkpoint's, as for stills, and
    the one the restoration reports it ran."""
    from core.registry import NO_WEIGHTS
    from core.video import clip_weights_digest

    digest = clip_weights_digest("livemoments-video", {"checkpoint": str(tiny_checkpoint)})
    assert digest != NO_WEIGHTS and digest == guided.restorer.diagnostics.extra["weights_digest"]
    assert clip_weights_digest("livemoments-video", {}) == NO_WEIGHTS
    assert clip_weights_digest("guided-video", {"checkpoint": str(tiny_checkpoint)}) == NO_WEIGHTS


def test_a_given_still_restorer_is_used_and_left_to_its_owner(
    clip: dict[str, Any], tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`still=`: the frames run on the given `livemoments` restorer (its models, loaded once,
    serve both), `unload()` leaves them to the owner, and its own options are refused beside it
    (they would be silently ignored)."""
    import core.livemoments.load as load

    loaded: list[Any] = []
    real = load.load_checkpoint
    monkeypatch.setattr(load, "load_checkpoint",
                        lambda *a, **k: loaded.append(real(*a, **k)) or loaded[-1])
    still = core.get_restorer("livemoments")
    restorer = get_clip_restorer("livemoments-video", still=still)
    request = ClipRequest(
        frames=iter(clip["frames"][:1]), keyframes=[Keyframe(clip["key"], 0)],
        frame_count=1, params={"checkpoint": str(tiny_checkpoint), **TILES},
    )
    assert len(list(restore_clip(request, restorer=restorer))) == 1
    assert len(loaded) == 1
    restorer.unload()
    assert still.load(tiny_checkpoint) is loaded[0]  # the given still's, kept by its owner
    assert len(loaded) == 1
    with pytest.raises(RestoreError, match="give either the still restorer or its options"):
        get_clip_restorer("livemoments-video", still=still, device="cpu")
