"""End to end through `core.restore` with a tiny random checkpoint: tiling, PCR, cancellation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import core
from core.api import Cancelled, CancelToken, DeviceUnavailable, RestoreError, RestoreRequest


def _scene(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 0.5 + 0.25 * np.sin(xx / 7.0)[..., None] * np.cos(yy / 5.0)[..., None]
    return np.clip(base + 0.1 * rng.random((h, w, 3), dtype=np.float32), 0, 1).astype(np.float32)


def _request(**kw) -> RestoreRequest:
    reference = _scene(176, 144)
    target = np.ascontiguousarray(reference[::2, ::2])
    return RestoreRequest(target=target, reference=reference, restorer="livemoments", **kw)


def test_restore_tiles_with_pcr_and_reports_progress(tiny_checkpoint: Path) -> None:
    events: list[tuple[float, str]] = []
    result = core.restore(
        _request(progress=lambda f, s: events.append((f, s)), seed=4),
        checkpoint=tiny_checkpoint,
        tile=64,
        overlap=16,
        tile_batch=2,
    )
    image, diag = result.image, result.diagnostics
    assert image.shape == (176, 144, 3) and image.dtype == np.float32
    assert np.isfinite(image).all() and image.min() >= 0.0 and image.max() <= 1.0
    assert diag.tiles == 4 * 3  # 176/64 → 4 rows, 144/64 → 3 columns with 16 px overlap
    assert diag.extra["steps"] == 6 * 12 and diag.extra["random_weights"] is True
    assert diag.extra["weights_digest"] and diag.timings["denoise"] > 0
    assert 0.5 < diag.flow_confidence <= 1.0  # a plain 2× downscale: the flow is consistent
    fractions = [f for f, _ in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert sum("step 6/6" in s for _, s in events) == 6  # per step, per tile batch
    # The colour fix keeps the frame's low frequencies: random weights still give its colours.
    assert abs(float(image.mean()) - float(_request().reference.mean())) < 0.05


def test_result_is_seeded_and_independent_of_the_tile_batch(tiny_checkpoint: Path) -> None:
    """Deterministic mode is exact for any tile batch; batched mode agrees to rounding.

    Batching changes only the summation order inside batched matrix products and convolutions
    (each float32 sum of K terms may move by up to about K·2^-24 relative), but six Euler steps
    through random networks and the VAE decoder amplify that by no bound known in advance (it
    was 2e-5 on one machine and 2.16e-5 on another). What batching must not do is change the
    written image: the output is quantised to 8 bits, so the bound tested is half a level,
    0.5/255, about 100 times the rounding seen and far below what a mixed-up tile or noise
    seed gives (a different seed moves pixels by up to ~1).
    """
    restorer = core.get_restorer("livemoments", checkpoint=tiny_checkpoint, tile=64, overlap=16)
    a = restorer.restore(_request(seed=1)).image
    b = restorer.restore(_request(seed=1, params={"tile_batch": 3})).image
    c = restorer.restore(_request(seed=2)).image
    np.testing.assert_allclose(a, b, rtol=0, atol=0.5 / 255)
    assert np.abs(a - c).max() > 0.1  # the seed matters, so the comparisons above mean something
    exact = core.get_restorer(
        "livemoments", checkpoint=tiny_checkpoint, tile=64, overlap=16, deterministic=True
    )
    d = exact.restore(_request(seed=1, params={"tile_batch": 3}))
    assert d.diagnostics.extra["tile_batch"] == 1 and d.diagnostics.extra["deterministic"]
    np.testing.assert_array_equal(d.image, a)


def test_small_image_is_padded_into_one_tile(tiny_checkpoint: Path) -> None:
    reference = _scene(40, 56)
    request = RestoreRequest(
        target=reference[::2, ::2],
        reference=reference,
        reference_lq=reference[::2, ::2],
        restorer="livemoments",
    )
    result = core.restore(request, checkpoint=tiny_checkpoint, tile=64, overlap=16)
    assert result.image.shape == (40, 56, 3) and result.diagnostics.tiles == 1


def test_cancellation_stops_between_steps(tiny_checkpoint: Path) -> None:
    token = CancelToken()
    seen: list[str] = []

    def progress(fraction: float, stage: str) -> None:
        seen.append(stage)
        if "step 3/6" in stage:
            token.cancel()

    with pytest.raises(Cancelled):
        core.restore(
            _request(progress=progress, cancel=token),
            checkpoint=tiny_checkpoint,
            tile=64,
            overlap=16,
        )
    assert not any("step 4/6" in s for s in seen)
    assert not any("done" in s for s in seen)


def test_configuration_errors_are_clear(tiny_checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(RestoreError, match="checkpoint"):
        core.restore(_request())
    with pytest.raises(RestoreError, match="unknown parameters"):
        core.get_restorer("livemoments", checkpoint=tiny_checkpoint, tiles=3)
    with pytest.raises(RestoreError, match="overlap < tile, got 64 and 64"):
        core.get_restorer("livemoments", checkpoint=tiny_checkpoint, tile=64)  # overlap 64
    with pytest.raises(RestoreError, match="invalid LiveMoments checkpoint"):
        core.restore(_request(), checkpoint=tmp_path, tile=64, overlap=16)
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(DeviceUnavailable):
            core.restore(_request(), checkpoint=tiny_checkpoint, device="cuda", tile=64, overlap=16)


class _Recording:
    """A real DIS estimator that remembers the pairs it was given."""

    name = "dis"

    def __init__(self) -> None:
        from core.flow import DISFlow

        self.inner = DISFlow("medium")
        self.pairs: list[tuple[np.ndarray, np.ndarray]] = []

    def __call__(self, a: np.ndarray, b: np.ndarray, init: np.ndarray | None = None) -> np.ndarray:
        self.pairs.append((a, b))
        return self.inner(a, b, init)


def test_pcr_crops_follow_the_camera_motion(tiny_checkpoint: Path) -> None:
    """The reference shows the scene 48 px further left: PCR must move each crop with it."""
    from core.flow import DISFlow
    from core.livemoments.load import load_checkpoint
    from core.livemoments.pipeline import LiveMomentsPipeline, PipelineOptions

    scene = _scene(128, 192 + 48, seed=3)
    reference = np.ascontiguousarray(scene[:, 48:])
    target = np.ascontiguousarray(scene[::2, :192:2])
    local = _Recording()
    pipe = LiveMomentsPipeline(
        load_checkpoint(tiny_checkpoint),
        DISFlow("medium"),
        local,
        PipelineOptions(tile=64, overlap=16, color_fix=False),
    )
    pipe(target, reference)
    pipe.close()
    target_up = core.images.resize(target, 128, 192, interpolation="bicubic")
    assert len(local.pairs) == 3 * 4
    aligned = [float(np.abs(ref_lq - lq).mean()) for ref_lq, lq in local.pairs]
    # Tiles whose crop is not clamped at the left edge must match their reference crop well,
    # far better than the crop at the tile's own position would.
    unshifted = float(np.abs(reference[:64, 64:128] - target_up[:64, 64:128]).mean())
    assert unshifted > 0.05
    not_clamped = [a for i, a in enumerate(aligned) if i % 4 != 0]  # tiles in columns 1-3
    assert max(not_clamped) < unshifted / 2


def test_low_memory_mode_restores_with_the_tiled_vae(tiny_checkpoint: Path) -> None:
    normal = core.get_restorer("livemoments", checkpoint=tiny_checkpoint, tile=64, overlap=16)
    low = core.get_restorer(
        "livemoments", checkpoint=tiny_checkpoint, tile=64, overlap=16, low_memory=True
    )
    a = normal.restore(_request(seed=5)).image
    result = low.restore(_request(seed=5, params={"tile_batch": 4}))
    assert result.diagnostics.extra["tile_batch"] == 1 and result.diagnostics.extra["low_memory"]
    assert result.image.shape == a.shape and np.isfinite(result.image).all()
    vae = low.load().vae
    assert vae.use_tiling and vae.tile_sample_min_size == 32  # the VAE works on quarter tiles
    again = low.restore(_request(seed=5)).image
    np.testing.assert_array_equal(result.image, again)


def test_out_of_memory_is_reported_as_such(tiny_checkpoint: Path) -> None:
    """The worker defers on OutOfDeviceMemory instead of burning the job's attempts."""
    import torch

    from core.api import OutOfDeviceMemory
    from core.flow import DISFlow
    from core.livemoments.load import load_checkpoint
    from core.livemoments.pipeline import LiveMomentsPipeline, PipelineOptions

    def exhausted(a: np.ndarray, b: np.ndarray, init: np.ndarray | None = None) -> np.ndarray:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    pipe = LiveMomentsPipeline(
        load_checkpoint(tiny_checkpoint), DISFlow(), exhausted, PipelineOptions(tile=64, overlap=16)
    )
    request = _request()
    with pytest.raises(OutOfDeviceMemory, match="tile 64"):
        pipe(request.target, request.reference)
    pipe.close()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"tile": "big"}, "parameter tile must be an integer"),
        ({"tile": 100}, "tile must be a positive multiple of 16"),
        ({"tile": 64, "overlap": 64}, "overlap < tile"),
        ({"tile_batch": 1.5}, "parameter tile_batch must be an integer"),
        ({"color_fix": "no"}, "color_fix must be true or false"),
        ({"flow": "farneback"}, "flow must be one of"),
        ({"tiles": 64}, "unknown parameter 'tiles'"),  # a typo is not silently ignored
        ({"seed": 2**70}, "seed must fit in 64 bits"),
    ],
)
def test_bad_request_parameters_are_restore_errors(
    tiny_checkpoint: Path, params: dict, message: str
) -> None:
    """Parameters come from TOML and `--param`: bad ones are named, not a TypeError/ValueError."""
    restorer = core.get_restorer("livemoments", checkpoint=tiny_checkpoint, tile=64, overlap=16)
    with pytest.raises(RestoreError, match=message):
        restorer.restore(_request(params=params))


def test_whole_float_geometry_is_accepted(tiny_checkpoint: Path) -> None:
    restorer = core.get_restorer("livemoments", checkpoint=tiny_checkpoint)
    result = restorer.restore(_request(params={"tile": 64.0, "overlap": 16.0}))
    assert result.diagnostics.tiles == 12 and result.diagnostics.extra["tile"] == 64


def test_a_request_for_another_checkpoint_loads_that_one(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    from core.livemoments.digest import weights_digest
    from core.livemoments.write import write_random_checkpoint

    other = write_random_checkpoint(tmp_path / "other", size="tiny", seed=11)
    restorer = core.get_restorer("livemoments", checkpoint=tiny_checkpoint, tile=64, overlap=16)
    first = restorer.restore(_request())
    assert first.diagnostics.extra["weights_digest"] == weights_digest(tiny_checkpoint)
    second = restorer.restore(_request(params={"checkpoint": str(other)}))
    assert second.diagnostics.extra["weights_digest"] == weights_digest(other)
    assert restorer.restore(_request()).diagnostics.extra["weights_digest"] == weights_digest(
        tiny_checkpoint
    )


def test_a_tile_larger_than_the_model_takes_is_refused_with_the_largest(
    tiny_checkpoint: Path,
) -> None:
    """The tiny checkpoint's pos_embed_max_size is 32 patches: 32 × 2 × 8 px = 512 px at most.
    The default tile (1024) is refused by name instead of failing deep inside diffusers."""
    with pytest.raises(RestoreError, match="largest tile it can take is 512"):
        core.restore(_request(), checkpoint=tiny_checkpoint)
    result = core.restore(_request(), checkpoint=tiny_checkpoint, tile=512)
    assert result.diagnostics.tiles == 1 and result.diagnostics.extra["tile"] == 512
