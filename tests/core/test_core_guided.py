"""The guided restorer on small synthetic scenes: detail transfer, no ghosting, cancellation."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import core
from core.api import Cancelled, CancelToken, RestoreError, RestoreRequest
from core.degrade import LivePhotoDegradation
from core.metrics import block_psnr_gain, psnr_y

REF_H, REF_W = 360, 480
FRAME_H, FRAME_W = 180, 240


def _scene(image_factory, *, subject: bool, seed: int = 0):
    """Reference, frame, ground truth and the moved subject's mask (reference resolution)."""
    big = image_factory(REF_H + 40, REF_W + 40, seed=seed)
    reference = big[20 : 20 + REF_H, 20 : 20 + REF_W].copy()
    truth = big[26 : 26 + REF_H, 15 : 15 + REF_W].copy()  # camera moved by (6, -5)
    mask = np.zeros((REF_H, REF_W), np.float32)
    if subject:
        # A bright patterned disc that is in the frame but nowhere in the reference.
        xx = np.mgrid[0:REF_H, 0:REF_W][1]
        cv2.circle(mask, (300, 150), 45, 1.0, -1)
        stripes = (0.5 + 0.45 * np.sign(np.sin(xx / 3.0)))[..., None].astype(np.float32)
        truth = (
            truth * (1 - mask[..., None]) + stripes * np.array([1.0, 0.2, 0.1]) * mask[..., None]
        )
    deg = LivePhotoDegradation(size=(FRAME_H, FRAME_W), codec="h264")
    frame = deg.apply(truth.astype(np.float32), seed=seed)
    return reference, frame, truth.astype(np.float32), mask > 0


def _restore(reference, frame, **kw):
    params = {"tile": 128, "overlap": 32, **kw.pop("params", {})}
    req = RestoreRequest(target=frame, reference=reference, restorer="guided", params=params, **kw)
    return core.restore(req)


def test_guided_transfers_reference_detail(image_factory):
    reference, frame, truth, _ = _scene(image_factory, subject=False)
    result = _restore(reference, frame)
    bicubic = core.restore(RestoreRequest(target=frame, reference=reference, restorer="bicubic"))
    assert result.image.shape == reference.shape and result.image.dtype == np.float32
    gain = psnr_y(result.image, truth, crop=16) - psnr_y(bicubic.image, truth, crop=16)
    assert gain > 2.0, gain
    diag = result.diagnostics
    assert diag.tiles == len(core.tiling.tile_grid(REF_H, REF_W, 128, 32))
    assert 0.5 < diag.flow_confidence <= 1.0
    # Most of the picture takes the reference's detail (the trusted area is shrunk by
    # `erode` around everything uncertain, so not all of it).
    assert diag.extra["transfer_fraction"] > 0.45
    assert diag.timings["tiles"] > 0 and diag.peak_memory_bytes > 0


def test_moved_subject_does_not_ghost(image_factory):
    reference, frame, truth, subject = _scene(image_factory, subject=True)
    result = _restore(reference, frame)
    bicubic = core.restore(RestoreRequest(target=frame, reference=reference, restorer="bicubic"))
    region = cv2.dilate(subject.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0

    def mse(img):
        return float(np.mean((img[region] - truth[region]) ** 2))

    # Inside the subject the reference is wrong: the output must stay with the frame.
    assert mse(result.image) <= mse(bicubic.image) * 1.1
    # ...while the rest of the picture still gains detail.
    rest = ~region
    assert np.mean((result.image[rest] - truth[rest]) ** 2) < 0.7 * np.mean(
        (bicubic.image[rest] - truth[rest]) ** 2
    )


def _moved_patch_scene(image_factory):
    """The camera moved (6, −5) and a disc of the scene moved on its own by (16, 24) with a
    hard edge; the place it left shows other content (from elsewhere in the picture). Unlike
    a foreign object, the subject's content is in the reference (at its old place), so a flow
    can follow it and smear its border: where ghosts come from."""
    big = image_factory(REF_H + 40, REF_W + 40, seed=0)
    reference = big[20 : 20 + REF_H, 20 : 20 + REF_W].copy()
    truth = big[26 : 26 + REF_H, 15 : 15 + REF_W].copy()
    yy, xx = np.mgrid[0:REF_H, 0:REF_W]
    left = (yy - 160) ** 2 + (xx - 220) ** 2 <= 48**2
    arrived = (yy - 176) ** 2 + (xx - 244) ** 2 <= 48**2
    scene = truth.copy()
    scene[left] = np.roll(truth, (120, -170), (0, 1))[left]
    scene[arrived] = np.roll(truth, (16, 24), (0, 1))[arrived]
    frame = LivePhotoDegradation(size=(FRAME_H, FRAME_W)).apply(scene, seed=0)
    subject = cv2.dilate((left | arrived).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    return reference, frame, scene, subject


def test_a_subject_that_moved_on_its_own_leaves_no_ghost(image_factory):
    """Issue 14 item 0: no 32-px block over the moved subject (16 frame px; a 64-px block at
    12 MP is 30) is worse than bicubic by more than 0.6 dB, while the static scene gains. With
    the reliability of before (no camera model, no residual check, erosion 3 px) the worst
    block over the subject was −2.3 dB."""
    reference, frame, truth, subject = _moved_patch_scene(image_factory)
    result = _restore(reference, frame).image
    bicubic = core.restore(RestoreRequest(target=frame, reference=reference, restorer="bicubic"))
    block = 32
    gains = block_psnr_gain(result, bicubic.image, truth, block)
    rows, cols = gains.shape
    touched = subject[: rows * block, : cols * block].reshape(rows, block, cols, block)
    over_subject = touched.any(axis=(1, 3))
    assert gains[over_subject].min() > -0.6, np.round(np.sort(gains[over_subject])[:4], 2)
    static = ~cv2.dilate(subject.astype(np.uint8), np.ones((33, 33), np.uint8)).astype(bool)
    static[:16], static[-16:], static[:, :16], static[:, -16:] = False, False, False, False

    def mse(image):
        return float(np.mean((image[static] - truth[static]) ** 2))

    assert 10 * np.log10(mse(bicubic.image) / mse(result)) > 3.0


def _calm_scene_with_moved_subject(image_factory, seed: int = 4):
    """A calm background (the camera moved by (6, −5)) and a busy subject (stripes over
    texture) with a soft edge that moved by (12, 20) on its own; where it was, the frame shows
    background the reference never saw. 384×512, frame at half size: a 64-px block here is 32
    frame pixels, as at 12 MP. On a calm background bicubic is nearly right, so any smear of
    the reference along the subject's border shows in the block's PSNR."""
    h, w = 384, 512
    big = 0.5 + 0.3 * (image_factory(h + 40, w + 40, seed=seed) - 0.5)
    yy, xx = np.mgrid[0:h, 0:w]
    stripes = (0.5 + 0.4 * np.sign(np.sin((xx + yy) / 2.5)))[..., None] * np.array([0.9, 0.5, 0.2])
    subject = 0.5 * image_factory(h, w, seed=seed + 100) + 0.5 * stripes

    def disc(cy: int, cx: int) -> np.ndarray:
        shape = np.zeros((h, w), np.float32)
        cv2.circle(shape, (cx, cy), 64, 1.0, -1)
        return cv2.GaussianBlur(shape, (0, 0), 2.0)[..., None]

    before, after = disc(192, 256), disc(192 + 12, 256 + 20)
    reference = big[20 : 20 + h, 20 : 20 + w] * (1 - before) + subject * before
    moved = np.roll(subject, (12, 20), (0, 1))
    truth = (big[26 : 26 + h, 15 : 15 + w] * (1 - after) + moved * after).astype(np.float32)
    frame = LivePhotoDegradation(size=(h // 2, w // 2)).apply(truth, seed=seed)
    return np.clip(reference, 0, 1).astype(np.float32), frame, truth


def test_no_block_is_worse_than_bicubic_along_a_moved_subjects_border(image_factory):
    """Issue 14 item 0: no 64-px block worse than bicubic by more than 0.3 dB, the mean gain
    kept. Along the border of a subject that moved on its own the flow blends two motions, so
    the reference there is a smear; the residual check used to forgive it next to a strong edge
    as a hair of misalignment, and the tone spread what differs at edges over the calm area
    beside them as a halo. With the reliability before (no motion boundaries, a plain Gaussian
    tone, corners tracked for the camera model) the worst block here was −0.53 dB."""
    reference, frame, truth = _calm_scene_with_moved_subject(image_factory)
    result = _restore(reference, frame, params={"tile": 256}).image
    bicubic = core.restore(RestoreRequest(target=frame, reference=reference, restorer="bicubic"))
    gains = block_psnr_gain(result, bicubic.image, truth, 64)
    assert gains.min() > -0.3, np.round(np.sort(gains, axis=None)[:4], 2)
    assert psnr_y(result, truth) - psnr_y(bicubic.image, truth) > 1.5


def test_reference_lq_is_used_when_given(image_factory):
    reference, frame, truth, _ = _scene(image_factory, subject=False, seed=3)
    lq = LivePhotoDegradation(size=(FRAME_H, FRAME_W)).apply(reference, seed=9)
    result = _restore(reference, frame, reference_lq=lq)
    bicubic = core.restore(RestoreRequest(target=frame, reference=reference, restorer="bicubic"))
    assert psnr_y(result.image, truth, crop=16) > psnr_y(bicubic.image, truth, crop=16) + 2.0


def test_progress_is_monotonic_and_cancel_stops_between_tiles(image_factory):
    reference, frame, _, _ = _scene(image_factory, subject=False)
    events: list[tuple[float, str]] = []
    _restore(reference, frame, progress=lambda f, s: events.append((f, s)))
    fractions = [f for f, _ in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any(s.startswith("tile ") for _, s in events)

    token = CancelToken()
    seen: list[str] = []

    def cancel_after_first_tile(fraction: float, stage: str) -> None:
        seen.append(stage)
        if stage.startswith("tile 2/"):
            token.cancel()

    with pytest.raises(Cancelled):
        _restore(reference, frame, progress=cancel_after_first_tile, cancel=token)
    assert not any(s.startswith("tile 3/") for s in seen)


def test_tiny_images_and_odd_sizes(image_factory):
    reference = image_factory(37, 53, seed=1)
    frame = cv2.resize(reference, (26, 18), interpolation=cv2.INTER_AREA)
    result = _restore(reference, frame, params={"tile": 1024, "overlap": 64})
    assert result.image.shape == (37, 53, 3)
    assert np.isfinite(result.image).all()
    assert result.image.min() >= 0 and result.image.max() <= 1


def test_bad_parameters_are_refused(image_factory):
    reference, frame, _, _ = _scene(image_factory, subject=False)
    with pytest.raises(RestoreError, match="unknown parameters"):
        _restore(reference, frame, params={"nonsense": 1})
    with pytest.raises(RestoreError, match="tile"):
        _restore(reference, frame, params={"tile": 64, "overlap": 40})
    with pytest.raises(RestoreError, match="flow"):
        _restore(reference, frame, params={"flow": "raft"})  # no weights file


def test_colour_fix_option_keeps_the_frames_colours(image_factory):
    reference, frame, _, _ = _scene(image_factory, subject=False)
    tinted_ref = np.clip(reference * np.array([1.3, 1.0, 0.7], np.float32), 0, 1)
    out = _restore(tinted_ref, frame, params={"color_fix": True}).image
    up = cv2.resize(frame, (REF_W, REF_H), interpolation=cv2.INTER_CUBIC)
    assert np.abs(out.mean((0, 1)) - up.mean((0, 1))).max() < 0.02


def test_baselines_restore_the_frame_alone(image_factory):
    """`bicubic` is exactly the frame upscaled bicubically (clipped); `sharpen` is a Lanczos
    upscale plus an unsharp mask of strength `amount`. Both are single-image yardsticks: the
    reference must make no difference at all."""
    reference, frame, _, _ = _scene(image_factory, subject=False)
    unrelated = image_factory(REF_H, REF_W, seed=9)

    def run(name, ref, **params):
        request = RestoreRequest(target=frame, reference=ref, restorer=name, params=params)
        return core.restore(request).image

    for name in ("bicubic", "sharpen"):
        np.testing.assert_array_equal(run(name, reference), run(name, unrelated))
    upscaled = np.clip(cv2.resize(frame, (REF_W, REF_H), interpolation=cv2.INTER_CUBIC), 0, 1)
    np.testing.assert_array_equal(run("bicubic", reference), upscaled)

    lanczos = np.clip(cv2.resize(frame, (REF_W, REF_H), interpolation=cv2.INTER_LANCZOS4), 0, 1)
    np.testing.assert_array_equal(run("sharpen", reference, amount=0.0), lanczos)

    def detail(image):  # energy above the frame's resolution
        return float(np.mean((image - cv2.GaussianBlur(image, (0, 0), 2.0)) ** 2))

    gentle, strong = run("sharpen", reference, amount=0.3), run("sharpen", reference, amount=1.2)
    assert detail(upscaled) < detail(gentle) < detail(strong)
    # Sharpening adds detail, not a colour or tone shift (clipping aside).
    assert np.abs(strong.mean((0, 1)) - upscaled.mean((0, 1))).max() < 0.01


def test_structural_disagreement_tolerates_blur_and_tone_but_not_displacement(image_factory):
    from core.reliability import structural_disagreement, texture_weight

    img = image_factory(120, 160, seed=6)
    blurred = cv2.GaussianBlur(img, (0, 0), 0.8)
    toned = np.clip(img * 0.8 + 0.1, 0, 1)
    moved = np.roll(img, (0, 7), (0, 1))
    inner = (slice(12, -12), slice(12, -12))

    def ratio(b):
        return float(structural_disagreement(img, b, 1.0, 4.0, 1e-4)[inner].mean())

    assert ratio(img) == pytest.approx(0.0, abs=1e-6)
    assert ratio(blurred) < 0.15 and ratio(toned) < 0.15
    assert ratio(moved) > 0.6
    flat = np.full_like(img, 0.4)
    assert texture_weight(flat, 1.0, 4.0, 1e-4).max() < 1e-3
    assert texture_weight(img, 1.0, 4.0, 1e-4)[inner].mean() > 0.5


def test_the_tone_is_measured_on_surfaces_not_across_edges():
    """A frame 0.02 brighter than the reference, whose edge sits 0.4 px off the reference's
    and is a little softer: 3 px beside the edge the tone is the 0.02 within a fifth of it,
    not the edge's difference spread as a halo (a plain Gaussian of the difference is off by
    three quarters of it there)."""
    from core.reliability import blur, edge_aware_tone

    soft = np.full((64, 96, 3), 0.6, np.float32)
    soft[:, :40] = 0.1  # a dark pole against a bright sky
    soft = blur(soft, 0.7)
    shift = np.float32([[1, 0, 0.4], [0, 1, 0]])
    frame = cv2.warpAffine(
        blur(soft, 0.5), shift, (96, 64), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT
    ) + 0.02
    tone = edge_aware_tone(frame, soft, 3.0, 1e-4)
    beside = (slice(8, -8), slice(43, 60))  # the sky, from 3 px beside the edge
    assert np.abs(tone[beside] - 0.02).max() < 0.004
    plain = blur(frame - soft, 3.0)
    assert np.abs(plain[beside] - 0.02).max() > 0.015


def test_a_render_at_still_size_is_restored_like_the_video_frame(image_factory):
    """Photos renders the reselected frame at the still's size (IMG_E1234.HEIC): upscaled video
    pixels. Given the video frame at T0, guided must see through the upscale."""
    reference, frame, truth, _ = _scene(image_factory, subject=False, seed=5)
    lq = LivePhotoDegradation(size=(FRAME_H, FRAME_W)).apply(reference, seed=11)
    render = cv2.resize(frame, (REF_W, REF_H), interpolation=cv2.INTER_CUBIC)
    from_frame = _restore(reference, frame, reference_lq=lq)
    from_render = _restore(reference, render, reference_lq=lq)
    bicubic = psnr_y(np.clip(render, 0, 1), truth, crop=16)
    assert psnr_y(from_render.image, truth, crop=16) > bicubic + 2.0
    # As much of the reference is taken as from the video frame itself (without the frame
    # at T0 to see through the upscale, under a tenth is).
    transfer = from_render.diagnostics.extra["transfer_fraction"]
    assert transfer > 0.3 and transfer > 0.9 * from_frame.diagnostics.extra["transfer_fraction"]
    assert abs(
        psnr_y(from_render.image, truth, crop=16) - psnr_y(from_frame.image, truth, crop=16)
    ) < 1.0


def test_mistyped_parameters_are_refused_by_name(image_factory):
    """Values from TOML or `--param` may be words; they must be bad input, not a TypeError."""
    reference, frame, _, _ = _scene(image_factory, subject=False)
    for params, name in (
        ({"tile": "abc"}, "tile"),
        ({"tile": 96.5}, "tile"),
        ({"tone_sigma": "wide"}, "tone_sigma"),
        ({"color_fix": "yes"}, "color_fix"),
        ({"seed": [1]}, "seed"),
    ):
        with pytest.raises(RestoreError, match=f"parameter {name} must be"):
            _restore(reference, frame, params=params)
    # Numbers of a compatible kind are accepted (JSON gives 6 for a float, 96.0 for an int).
    out = _restore(reference, frame, params={"tile": 96.0, "overlap": 16, "tone_sigma": 6})
    assert out.image.shape == reference.shape
