"""Optical flow: one small interface, a weight-free default (OpenCV DIS) and RAFT.

Convention everywhere in `core`: a flow from image a to image b is an H×W×2 float32 array
(dx, dy) in pixels on a's grid, so pixel p of a shows the same scene point as b at p + flow(p)
(`warp(b, flow)` brings b onto a's grid). DIS needs no weights and runs in a fraction of a
second at video resolution on two cores; RAFT is better on large, textureless or fast motion
and is what the LiveMoments motion encoder was trained with, but it needs a weights file and
its correlation volume limits it to about 1–2 MP (so: global flow at video resolution, local
flow per tile).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np

from core.images import to_gray_u8


@runtime_checkable
class FlowEstimator(Protocol):
    """`estimator(image_a, image_b, init=None) -> flow a→b` for float RGB images of one size."""

    name: str

    def __call__(
        self, image_a: np.ndarray, image_b: np.ndarray, init: np.ndarray | None = None
    ) -> np.ndarray: ...


_DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
_DIS_MIN_SIDE = 16
"""Smallest side DIS is given (its patches need ≥ 12 px; 16 leaves a margin)."""


class DISFlow:
    """OpenCV's Dense Inverse Search flow on 8-bit luma; `init` seeds it (large motions)."""

    name = "dis"

    def __init__(self, preset: str = "medium") -> None:
        if preset not in _DIS_PRESETS:
            raise ValueError(f"unknown DIS preset {preset!r}; one of {sorted(_DIS_PRESETS)}")
        self.preset = preset

    def __call__(
        self, image_a: np.ndarray, image_b: np.ndarray, init: np.ndarray | None = None
    ) -> np.ndarray:
        _check_pair(image_a, image_b)
        # A fresh object per call: DIS keeps internal buffers and is not thread-safe.
        dis = cv2.DISOpticalFlow_create(_DIS_PRESETS[self.preset])
        gray_a = image_a if image_a.ndim == 2 else to_gray_u8(image_a)
        gray_b = image_b if image_b.ndim == 2 else to_gray_u8(image_b)
        h, w = gray_a.shape[:2]
        # DIS rejects images below its patch size (an OpenCV error for e.g. 11×11 or 5×40):
        # pad tiny inputs by edge replication and crop the flow back.
        pad_h, pad_w = max(0, _DIS_MIN_SIDE - h), max(0, _DIS_MIN_SIDE - w)
        if pad_h or pad_w:
            pads = ((0, pad_h), (0, pad_w))
            gray_a = np.pad(gray_a, pads, mode="edge")
            gray_b = np.pad(gray_b, pads, mode="edge")
        flow = None
        if init is not None:
            # DIS uses a same-size float32 2-channel flow passed in as its starting point.
            flow = np.ascontiguousarray(init, dtype=np.float32).copy()
            if pad_h or pad_w:
                flow = np.ascontiguousarray(np.pad(flow, (*pads, (0, 0)), mode="edge"))
        out = dis.calc(gray_a, gray_b, flow)
        return np.ascontiguousarray(out[:h, :w]) if pad_h or pad_w else out


class RaftFlow:
    """torchvision RAFT (`raft_large`/`raft_small`) loaded from a local weights file.

    Nothing is downloaded: `weights_path` is a state dict saved from torchvision's model (for
    LiveMoments parity, `raft_large` with `Raft_Large_Weights.C_T_SKHT_V1`). Inputs are scaled
    to [-1, 1] and replicate-padded to multiples of 8 (torchvision's own check is buggy, design
    §11); the flow is cropped back. `init` is ignored (RAFT's iterations start from zero).
    """

    name = "raft"

    def __init__(
        self,
        weights_path: str | Path,
        variant: str = "large",
        iters: int = 20,
        device: str = "cpu",
    ) -> None:
        import torch
        from torchvision.models.optical_flow import raft_large, raft_small

        if variant not in ("large", "small"):
            raise ValueError(f"RAFT variant must be 'large' or 'small', got {variant!r}")
        path = Path(weights_path)
        if not path.is_file():
            raise FileNotFoundError(f"RAFT weights not found: {path}")
        model = (raft_large if variant == "large" else raft_small)(weights=None, progress=False)
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        # Checkpoints saved from nn.DataParallel (the original RAFT repo) carry "module.".
        state = {k.removeprefix("module."): v for k, v in state.items()}
        model.load_state_dict(state, strict=True)
        self.model = model.eval().to(device)
        self.device = device
        self.iters = iters
        self.variant = variant

    def __call__(
        self, image_a: np.ndarray, image_b: np.ndarray, init: np.ndarray | None = None
    ) -> np.ndarray:
        import torch
        import torch.nn.functional as tf

        _check_pair(image_a, image_b)
        h, w = image_a.shape[:2]
        pad_h, pad_w = (-h) % 8, (-w) % 8

        def prep(img: np.ndarray) -> Any:
            t = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))
            t = t.permute(2, 0, 1)[None].to(self.device) * 2.0 - 1.0
            if pad_h or pad_w:
                t = tf.pad(t, (0, pad_w, 0, pad_h), mode="replicate")
            return t

        with torch.inference_mode():
            flows = self.model(prep(image_a), prep(image_b), num_flow_updates=self.iters)
        flow = flows[-1][0, :, :h, :w].permute(1, 2, 0).float().cpu().numpy()
        return np.ascontiguousarray(flow, dtype=np.float32)


def make_flow_estimator(
    name: str = "dis",
    *,
    weights_path: str | Path | None = None,
    variant: str = "large",
    iters: int = 20,
    device: str = "cpu",
    preset: str = "medium",
) -> FlowEstimator:
    """Build an estimator from configuration: "dis" (default) or "raft" (needs weights_path)."""
    if name == "dis":
        return DISFlow(preset)
    if name == "raft":
        if weights_path is None:
            raise ValueError("RAFT flow needs a local weights file (weights_path)")
        return RaftFlow(weights_path, variant=variant, iters=iters, device=device)
    raise ValueError(f"unknown flow estimator {name!r}; use 'dis' or 'raft'")


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape[:2] != b.shape[:2]:
        raise ValueError(f"flow needs images of one size, got {a.shape[:2]} and {b.shape[:2]}")


def identity_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinate maps (x, y) as float32, for `cv2.remap`."""
    xs = np.arange(width, dtype=np.float32)
    ys = np.arange(height, dtype=np.float32)
    return np.broadcast_to(xs, (height, width)), np.broadcast_to(ys[:, None], (height, width))


def warp(
    image: np.ndarray,
    flow: np.ndarray,
    *,
    offset: tuple[float, float] = (0.0, 0.0),
    border: str = "replicate",
    interpolation: int = cv2.INTER_LINEAR,
) -> np.ndarray:
    """Sample `image` at p + flow(p) (+ offset (dy, dx)) for each pixel p of the flow's grid.

    `image` may be larger than the flow (a whole reference sampled for one tile): `offset`
    is then the tile's position in the image's coordinates. Bilinear (or `interpolation`),
    float32.
    """
    h, w = flow.shape[:2]
    gx, gy = identity_grid(h, w)
    map_x = gx + flow[:, :, 0] + np.float32(offset[1])
    map_y = gy + flow[:, :, 1] + np.float32(offset[0])
    mode = {"replicate": cv2.BORDER_REPLICATE, "reflect": cv2.BORDER_REFLECT101}.get(
        border, cv2.BORDER_CONSTANT
    )
    out = cv2.remap(image, map_x, map_y, interpolation, borderMode=mode)
    if out.ndim == 2 and image.ndim == 3:
        out = out[:, :, None]
    return out


def warp_window(
    image: np.ndarray,
    flow: np.ndarray,
    *,
    offset: tuple[float, float] = (0.0, 0.0),
    bounds: tuple[int, int, int, int] | None = None,
    interpolation: int = cv2.INTER_LINEAR,
) -> tuple[np.ndarray, np.ndarray]:
    """`warp(image, flow, offset=offset)` reading only the part of `image` the flow reaches.

    Why: `image` may be a 108 MP reference kept in 8 bits; only the window the samples fall in
    (plus the bilinear neighbours) is converted to float32. The sample coordinates are computed
    as `warp` computes them and then moved by the window's whole-pixel origin, which is exact
    in float32, so OpenCV interpolates the same neighbours with the same weights: the result
    equals `warp`'s. `bounds` (y0, y1, x0, x1) caps the window (a wild flow must not pull in
    the whole image); it also returns where the samples stayed within the window (bool H×W),
    all True without `bounds` (then the window never cuts a sample short).
    """
    from core.resample import as_float

    h, w = flow.shape[:2]
    gx, gy = identity_grid(h, w)
    map_x = gx + flow[:, :, 0] + np.float32(offset[1])
    map_y = gy + flow[:, :, 1] + np.float32(offset[0])
    ih, iw = image.shape[:2]
    # The interpolation's neighbours (bilinear: floor and floor + 1; bicubic: floor − 1 to
    # floor + 2), with a pixel's room for OpenCV rounding the coordinate to 1/32 first.
    reach = 2 if interpolation == cv2.INTER_CUBIC else 1
    y0 = min(max(int(np.floor(map_y.min())) - reach, 0), ih - 1)
    y1 = max(min(int(np.floor(map_y.max())) + reach + 2, ih), y0 + 1)
    x0 = min(max(int(np.floor(map_x.min())) - reach, 0), iw - 1)
    x1 = max(min(int(np.floor(map_x.max())) + reach + 2, iw), x0 + 1)
    reached = np.ones((h, w), bool)
    if bounds is not None:
        by0, by1, bx0, bx1 = bounds
        capped = (max(y0, by0), min(y1, by1), max(x0, bx0), min(x1, bx1))
        if capped != (y0, y1, x0, x1):
            y0, y1, x0, x1 = capped
            if y1 <= y0 or x1 <= x0:
                return np.zeros((h, w, *image.shape[2:]), np.float32), np.zeros((h, w), bool)
            # A sample is whole when all its neighbours lie in the window (or it is clamped
            # at the image's own edge, as `warp` would clamp it).
            reached = (
                ((map_x >= x0 + reach - 1) | (x0 == 0))
                & ((map_x <= x1 - reach - 1) | (x1 == iw))
                & ((map_y >= y0 + reach - 1) | (y0 == 0))
                & ((map_y <= y1 - reach - 1) | (y1 == ih))
            )
    window = as_float(image[y0:y1, x0:x1])
    map_x -= np.float32(x0)
    map_y -= np.float32(y0)
    out = cv2.remap(window, map_x, map_y, interpolation, borderMode=cv2.BORDER_REPLICATE)
    if out.ndim == 2 and image.ndim == 3:
        out = out[:, :, None]
    return out, reached


def inside_mask(
    flow: np.ndarray, shape: tuple[int, int], offset: tuple[float, float] = (0.0, 0.0)
) -> np.ndarray:
    """Where p + flow(p) (+ offset) lands inside an image of `shape`: bool H×W."""
    h, w = flow.shape[:2]
    gx, gy = identity_grid(h, w)
    x = gx + flow[:, :, 0] + offset[1]
    y = gy + flow[:, :, 1] + offset[0]
    return (x >= 0) & (x <= shape[1] - 1) & (y >= 0) & (y <= shape[0] - 1)


def resize_flow(flow: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a flow field to (height, width), scaling dx by the width ratio and dy by height's."""
    h, w = flow.shape[:2]
    if (h, w) == (height, width):
        return flow.copy()
    out = cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR)
    out[:, :, 0] *= width / w
    out[:, :, 1] *= height / h
    return out


def forward_backward_confidence(
    forward: np.ndarray, backward: np.ndarray, *, sigma: float = 1.0, relative: float = 0.05
) -> np.ndarray:
    """Per-pixel trust in `forward` (a→b) from its agreement with `backward` (b→a), in [0, 1].

    A consistent pair satisfies forward(p) + backward(p + forward(p)) = 0. The error e is
    mapped through exp(−e² / 2τ²) with τ = sigma + relative·|forward|, so large motions get
    proportionally more slack (Sundaram et al.). Points leaving b's frame get 0.
    """
    back_at = warp(backward, forward, border="constant")
    err2 = np.sum((forward + back_at) ** 2, axis=2)
    mag = np.sqrt(np.sum(forward**2, axis=2))
    tau = sigma + relative * mag
    conf = np.exp(-err2 / (2.0 * tau * tau)).astype(np.float32)
    conf[~inside_mask(forward, backward.shape[:2])] = 0.0
    return conf
