from __future__ import annotations

import numpy as np
import pytest

from core.flow import (
    DISFlow,
    FlowEstimator,
    forward_backward_confidence,
    inside_mask,
    make_flow_estimator,
    resize_flow,
    warp,
)


def _shifted_pair(image_factory, dy=6, dx=-4, h=160, w=200):
    big = image_factory(h + 40, w + 40, seed=11)
    a = big[20 : 20 + h, 20 : 20 + w]
    b = big[20 + dy : 20 + dy + h, 20 + dx : 20 + dx + w]
    return a, b


def test_dis_recovers_a_translation_and_warp_aligns(image_factory):
    a, b = _shifted_pair(image_factory)
    est = DISFlow()
    assert isinstance(est, FlowEstimator)
    flow = est(a, b)
    assert flow.shape == (160, 200, 2) and flow.dtype == np.float32
    inner = flow[20:-20, 20:-20].reshape(-1, 2)
    # a(p) = b(p - (dy, dx)) → flow a→b is (dx, dy) = (4, -6)
    np.testing.assert_allclose(np.median(inner, axis=0), [4.0, -6.0], atol=0.25)
    aligned = warp(b, flow)
    assert np.abs(aligned - a)[20:-20, 20:-20].mean() < 0.01


def test_dis_uses_the_initial_flow_for_large_motion(image_factory):
    a, b = _shifted_pair(image_factory, dy=18, dx=-17)
    init = np.zeros((*a.shape[:2], 2), np.float32)
    init[..., 0], init[..., 1] = 16.0, -17.0
    flow = DISFlow("fast")(a, b, init)
    np.testing.assert_allclose(
        np.median(flow[30:-30, 30:-30].reshape(-1, 2), 0), [17, -18], atol=0.3
    )


def test_forward_backward_confidence_high_for_consistent_low_for_not():
    fwd = np.zeros((50, 60, 2), np.float32)
    fwd[..., 0] = 3.0
    bwd = -fwd
    conf = forward_backward_confidence(fwd, bwd)
    assert conf.shape == (50, 60)
    assert conf[:, :50].min() > 0.99
    assert conf[:, -3:].max() == 0.0  # leaves the frame
    bad = forward_backward_confidence(fwd, np.full_like(fwd, 4.0))
    assert bad.max() < 0.01
    assert ((conf >= 0) & (conf <= 1)).all()


def test_resize_flow_scales_vectors():
    f = np.ones((10, 20, 2), np.float32)
    g = resize_flow(f, 30, 40)
    assert g.shape == (30, 40, 2)
    np.testing.assert_allclose(g[..., 0], 2.0)
    np.testing.assert_allclose(g[..., 1], 3.0)


def test_warp_with_offset_samples_a_larger_image():
    img = np.arange(100, dtype=np.float32).reshape(10, 10, 1).repeat(3, 2)
    flow = np.zeros((3, 4, 2), np.float32)
    out = warp(img, flow, offset=(2, 5))
    np.testing.assert_allclose(out[..., 0], img[2:5, 5:9, 0])
    assert inside_mask(flow, (10, 10), (2, 5)).all()
    assert not inside_mask(flow, (10, 10), (8, 5)).all()


def test_make_flow_estimator():
    assert make_flow_estimator("dis").name == "dis"
    with pytest.raises(ValueError):
        make_flow_estimator("raft")
    with pytest.raises(ValueError):
        make_flow_estimator("nope")


def test_raft_loads_a_local_state_dict_and_pads(tmp_path, image_factory):
    torch = pytest.importorskip("torch")
    optical_flow = pytest.importorskip("torchvision.models.optical_flow")

    from core.flow import RaftFlow

    torch.manual_seed(0)
    weights = tmp_path / "raft_small.pth"
    torch.save(optical_flow.raft_small(weights=None).state_dict(), weights)
    est = make_flow_estimator("raft", weights_path=weights, variant="small", iters=2)
    assert isinstance(est, RaftFlow)
    a = image_factory(45, 61, seed=1)  # not multiples of 8
    flow = est(a, a)
    assert flow.shape == (45, 61, 2) and flow.dtype == np.float32 and np.isfinite(flow).all()
    with pytest.raises(FileNotFoundError):
        RaftFlow(tmp_path / "missing.pth")


@pytest.mark.parametrize("shape", [(1, 1), (11, 11), (5, 40), (40, 5)])
def test_dis_handles_images_smaller_than_its_patches(image_factory, shape):
    """OpenCV's DIS raises on inputs below ≈12 px; the estimator pads and crops instead."""
    h, w = shape
    a = image_factory(h + 8, w + 8, seed=3)[:h, :w]
    b = np.roll(a, 1, axis=1)
    init = np.zeros((h, w, 2), np.float32)
    for flow in (DISFlow("ultrafast")(a, b), DISFlow()(a, b, init)):
        assert flow.shape == (h, w, 2) and flow.dtype == np.float32
        assert np.isfinite(flow).all()


def test_restore_of_a_tiny_photo_does_not_crash_in_flow():
    """A few-pixel frame and reference (odd, but a valid image) restore to the reference size."""
    import core

    rng = np.random.default_rng(0)
    request = core.RestoreRequest(
        target=rng.random((3, 4, 3), dtype=np.float32),
        reference=rng.random((6, 8, 3), dtype=np.float32),
    )
    result = core.restore(request)
    assert result.image.shape == (6, 8, 3)
