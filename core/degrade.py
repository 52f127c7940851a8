"""A Live Photo degradation model: what the camera's video path does to the key photo.

Why: (1) when no video frame at the original key time exists, the guided restorer degrades
the reference the same way to compare like with like; (2) the benchmark synthesises
(frame, reference, ground truth) triples from real high-quality photos.

The chain, in order, with the defaults chosen to look like an iPhone 1440p/1080p Live Photo
video frame next to its 12 MP still:

1. downscale to the video resolution (`size`, or `scale` × the input) with area averaging;
2. Gaussian blur of `blur_sigma` output pixels (optics/ISP/scaler softness the still lacks);
3. signal-dependent sensor noise: σ² = `shot_noise`·x + `read_noise`², in linear-ish [0, 1];
4. real codec compression: `codec` "h264" (libx264) or "hevc" (libx265) at quality `crf`,
   4:2:0 chroma, encoding `frames` frames (independent noise each) and keeping the last one,
   so with frames ≥ 2 the kept frame is an inter (P) frame as in a real clip; None skips it.

Deterministic for a given seed: noise comes from `numpy.random.default_rng(seed)` and the
encoders run single-threaded.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from core.images import resize

_ENCODERS = {"h264": "libx264", "hevc": "libx265"}


@dataclass(frozen=True, slots=True)
class LivePhotoDegradation:
    size: tuple[int, int] | None = None
    """Output (height, width); None means `scale` × the input size."""
    scale: float = 1920 / 4032
    blur_sigma: float = 0.7
    shot_noise: float = 0.0008
    read_noise: float = 0.006
    codec: str | None = "h264"
    crf: int = 27
    frames: int = 2
    preset: str = "veryfast"

    @classmethod
    def for_matching(cls, size: tuple[int, int]) -> LivePhotoDegradation:
        """Resolution and softness only: enough to compare the reference with a video frame."""
        return cls(size=size, shot_noise=0.0, read_noise=0.0, codec=None, frames=1)

    def with_size(self, size: tuple[int, int]) -> LivePhotoDegradation:
        return replace(self, size=size)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        if self.size is not None:
            return self.size
        return max(1, round(height * self.scale)), max(1, round(width * self.scale))

    def apply(self, image: np.ndarray, seed: int = 0) -> np.ndarray:
        """Degrade a float32 H×W×3 [0, 1] image; returns float32 at the output size."""
        if self.codec is not None and self.codec not in _ENCODERS:
            raise ValueError(f"codec must be one of {sorted(_ENCODERS)} or None")
        oh, ow = self.output_size(*image.shape[:2])
        small = resize(image.astype(np.float32, copy=False), oh, ow)
        if self.blur_sigma > 0:
            small = cv2.GaussianBlur(small, (0, 0), self.blur_sigma, borderType=cv2.BORDER_REFLECT)
        rng = np.random.default_rng(seed)
        count = max(1, self.frames) if self.codec else 1
        frames = [np.clip(self._noise(small, rng), 0.0, 1.0) for _ in range(count)]
        if self.codec is None:
            return frames[-1].astype(np.float32)
        return encode_decode(frames, self.codec, self.crf, self.preset)

    def _noise(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.shot_noise <= 0 and self.read_noise <= 0:
            return image
        var = self.shot_noise * np.clip(image, 0.0, 1.0) + self.read_noise**2
        noise = rng.standard_normal(image.shape, dtype=np.float32) * np.sqrt(var)
        return image + noise.astype(np.float32)


def encode_decode(
    frames: list[np.ndarray], codec: str = "h264", crf: int = 27, preset: str = "veryfast"
) -> np.ndarray:
    """Encode float RGB frames with PyAV's H.264/HEVC encoder; return the last decoded frame.

    Odd sizes are padded by edge replication (4:2:0 needs even sizes) and cropped back.
    """
    from fractions import Fraction

    import av

    h, w = frames[0].shape[:2]
    ph, pw = h + (h % 2), w + (w % 2)
    # Encode and decode in memory with bare codec contexts: no container, so no muxer quirks.
    encoder = av.CodecContext.create(_ENCODERS[codec], "w")
    encoder.width, encoder.height = pw, ph
    encoder.pix_fmt = "yuv420p"
    encoder.time_base = Fraction(1, 30)
    encoder.framerate = Fraction(30, 1)
    if codec == "h264":
        encoder.options = {"crf": str(crf), "preset": preset, "threads": "1"}
    else:
        encoder.options = {
            "crf": str(crf),
            "preset": preset,
            "x265-params": "log-level=none:pools=none:frame-threads=1",
        }
    packets = []
    for index, rgb in enumerate(frames):
        u8 = (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        if (ph, pw) != (h, w):
            u8 = cv2.copyMakeBorder(u8, 0, ph - h, 0, pw - w, cv2.BORDER_REPLICATE)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(u8), format="rgb24")
        frame = frame.reformat(format="yuv420p")
        frame.pts = index
        frame.time_base = encoder.time_base
        packets.extend(encoder.encode(frame))
    packets.extend(encoder.encode(None))
    decoder = av.CodecContext.create(codec, "r")
    if encoder.extradata:
        decoder.extradata = encoder.extradata
    last: np.ndarray | None = None
    for packet in [*packets, None]:
        for decoded in decoder.decode(packet):
            last = decoded.to_ndarray(format="rgb24")
    if last is None:
        raise RuntimeError(f"{codec} encoder produced no decodable frame")
    return (last[:h, :w].astype(np.float32) / 255.0).astype(np.float32)
