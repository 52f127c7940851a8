"""Where a reference image may be trusted for a frame: per-pixel reliability in [0, 1].

Why a module of its own: a restorer that transfers detail from a reference (a still's key
photo, or a keyframe for every frame of a clip) must know, region by region, whether the
warped reference shows what the frame shows. Where it does not (a subject that moved on its
own, a region the reference never saw, a flow failure) the output must fall back to the frame's
own content, or the reference is pasted in as a ghost. These functions are the building blocks:
plain arrays in, arrays out, all at the frame's own scale (the frame holds no information above
it, and it is many times cheaper than the reference's).

Conventions: images are float32 H×W×3 in [0, 1]; maps are float32 H×W; σ values are in pixels
of the arrays given.
"""

from __future__ import annotations

import cv2
import numpy as np


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with reflected borders; the shape (H×W or H×W×C) is kept."""
    if sigma <= 0:
        return image
    out = cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    if out.ndim == 2 and image.ndim == 3:
        out = out[:, :, None]
    return out


def channel_energy(image: np.ndarray) -> np.ndarray:
    """Σ_c image_c² as H×W float32 (much faster than np.sum(axis=2) on interleaved data)."""
    if image.ndim == 2:
        return image * image
    flat = image.reshape(-1, image.shape[2])
    out = np.zeros(flat.shape[0], np.float32)
    for c in range(image.shape[2]):
        out += flat[:, c] * flat[:, c]
    return out.reshape(image.shape[:2])


def structural_disagreement(
    a: np.ndarray,
    b: np.ndarray,
    fine: float,
    coarse: float,
    floor: float,
    window: float | None = None,
) -> np.ndarray:
    """How differently a and b are structured locally, in [0, 2]: H×W float32.

    Both images are band-passed between `fine` (about one video pixel: below it the frame
    differs from any reference by blur, noise and codec anyway) and `coarse` (above it, a
    colour or exposure shift is no reason for distrust). The local energy of the difference
    of the bands is divided by the local energy of the bands themselves (plus `floor`, the
    energy of contrast too faint to matter): 0 when the structure matches (even if one is
    blurrier), ≈ 1 when it is unrelated (a subject that moved, an occlusion, a flow failure),
    up to 2 when it is inverted. Normalising makes a high-contrast edge that is merely a little
    softer in the frame count as agreement. The energies are averaged over a Gaussian `window`
    (σ, default `coarse`): a small window sees a thin band of disagreement (a smeared edge of a
    moved subject) that a large one would average away.
    """
    window = coarse if window is None else window
    band_a = blur(a, fine) - blur(a, coarse)
    band_b = blur(b, fine) - blur(b, coarse)
    mismatch = blur(channel_energy(band_a - band_b), window)
    signal = blur(channel_energy(band_a) + channel_energy(band_b), window)
    return (mismatch / (signal + floor)).astype(np.float32)


def texture_weight(image: np.ndarray, fine: float, coarse: float, floor: float) -> np.ndarray:
    """signal / (signal + floor) of the same band: ≈ 0 on flat areas, → 1 on texture.

    Flow is arbitrary on flat areas (so its forward-backward check fails there) but any
    displacement of a flat area is harmless; this weight lets the check count only where it can
    both be trusted and matter.
    """
    band = blur(image, fine) - blur(image, coarse)
    signal = blur(channel_energy(band), coarse)
    return (signal / (signal + floor)).astype(np.float32)


def trust_from_disagreement(ratio: np.ndarray, tolerance: float) -> np.ndarray:
    """exp(−(ratio / tolerance)²): 1 where the structure agrees, → 0 where it does not."""
    return np.exp(-np.square(ratio / tolerance)).astype(np.float32)


def flow_coherence(flow: np.ndarray, radius: int, tolerance: float) -> np.ndarray:
    """How surely the flow is one smooth motion around each pixel: H×W float32 in [0, 1].

    Why: where two motions meet (a subject that moved on its own against the background, an
    occlusion) the flow is interpolated between them over a few pixels, so the reference
    sampled there is neither side's content: a smear, or an edge of the reference in a place
    the frame has none. The checks that follow judge at the frame's scale and forgive a small
    residual on a strong edge as a hair of misalignment, which is true of one smooth motion and
    false across a motion boundary. The spread (largest minus smallest, per component) of the
    flow within a disc of `radius` pixels measures it: a camera's motion changes by hundredths
    of a pixel over a few pixels, a moved subject's border by many. exp(−(spread/tolerance)²):
    1 inside one motion, → 0 along its boundary. Radius 0: all ones (no boundary is marked).
    """
    if radius <= 0:
        return np.ones(flow.shape[:2], np.float32)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1,) * 2)
    spread = np.zeros(flow.shape[:2], np.float32)
    for c in range(flow.shape[2]):
        channel = np.ascontiguousarray(flow[:, :, c], dtype=np.float32)
        high = cv2.dilate(channel, kernel, borderType=cv2.BORDER_REPLICATE)
        low = cv2.erode(channel, kernel, borderType=cv2.BORDER_REPLICATE)
        np.maximum(spread, high - low, out=spread)
    return np.exp(-np.square(spread / tolerance)).astype(np.float32)


def residual_trust(
    residual: np.ndarray,
    trusted: np.ndarray,
    factor: float,
    *,
    window: float = 1.5,
    contrast: float = 0.1,
    frame: np.ndarray | None = None,
    coherence: np.ndarray | None = None,
) -> np.ndarray:
    """Trust from the plain residual frame − (warped reference, softened, + tone), frame scale.

    The structural check divides by local contrast, so next to a strong edge a wrong shape
    (the pasted-over border of a moved subject, a bulge) can pass. The residual's local energy
    (Gaussian `window`) is compared with what a right alignment leaves: the typical energy where
    `trusted` is high (noise, codec), plus `contrast` × the local energy of the frame's detail
    when `frame` is given (a hair of misalignment on a strong edge), scaled by `coherence`
    (`flow_coherence`) when given: that excuse holds within one smooth motion, not across a
    motion boundary. exp(−energy / (factor · allowed)): 1 where the residual is ordinary, → 0
    far above it.
    """
    energy = blur(channel_energy(residual), window)
    sure = trusted > 0.8
    typical = float(np.median(energy[sure])) if sure.any() else float(np.median(energy))
    allowed = np.float32(max(typical, 1e-6))
    if frame is not None:
        detail = blur(channel_energy(frame - blur(frame, 4 * window)), window)
        if coherence is not None:
            detail = detail * coherence
        allowed = allowed + contrast * detail
    return np.exp(-energy / (factor * allowed)).astype(np.float32)


TONE_EDGE_SHARE = 0.05
"""How much a pixel on an edge or in texture still counts in the tone's average (a flat one
counts 1): enough that the tone is defined inside texture, too little for an edge to make a
halo."""


def edge_aware_tone(
    frame: np.ndarray, soft: np.ndarray, sigma: float, floor: float
) -> np.ndarray:
    """The frame's colour and exposure relative to the reference: H×W×C, smooth (σ `sigma`).

    `soft` is the warped reference softened like the frame. A plain Gaussian of frame − soft
    would also average what differs at edges (a fraction of a pixel of misalignment, a
    softness not quite the frame's, codec ringing) and spread it over the flat area beside the
    edge as a halo: on a sky beside a pole, a grey level of halo is a loss where bicubic is
    nearly exact. A tone is a property of surfaces, so it is measured where the reference is
    flat (normalised convolution): each pixel weighs floor / (floor + its detail energy) (the
    reference's detail finer than 2 pixels, over a 1-pixel window, so a flat pixel two pixels
    from an edge already counts fully), plus `TONE_EDGE_SHARE`. `floor`: detail energy too
    faint to matter.
    """
    detail = blur(channel_energy(soft - blur(soft, 2.0)), 1.0)
    weight = floor / (detail + floor) + TONE_EDGE_SHARE
    return blur((frame - soft) * weight[:, :, None], sigma) / blur(weight, sigma)[:, :, None]


def transfer_weight(
    frame: np.ndarray,
    aligned: np.ndarray,
    prior: np.ndarray,
    *,
    floor: float,
    tolerance: float,
    residual_factor: float,
    erode: int,
    feather: float,
    tone_sigma: float,
    softness: float,
    coherence: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(weight, tone) at the frame's scale for transferring a warped reference onto a frame.

    `weight` (H×W in [0, 1]) is how much of the reference to take where: the structural
    agreement of `aligned` with `frame`, capped by `prior` (the alignment's own confidence,
    where the reference was reached), by the plain residual (`residual_trust`, off when
    `residual_factor` is 0; along a motion boundary, where `coherence` (`flow_coherence`) is
    low, a residual above the ordinary is not forgiven), then shrunk by `erode` pixels and
    feathered (σ `feather`) so the soft edge stays inside what is trusted: the output fades to
    the frame's own content where the reference does not apply, without a seam and without a
    ghost at the border. `tone`
    (H×W×C) is the frame's colour and exposure relative to the reference (`edge_aware_tone`
    over σ `tone_sigma`, the reference first softened like the frame by `softness`, so an edge
    does not spread out as a halo); the restorer adds it to the reference it transfers.
    """
    ratio = structural_disagreement(frame, aligned, 1.0, 4.0, floor)
    weight = np.minimum(trust_from_disagreement(ratio, tolerance), prior)
    soft = blur(aligned, softness)
    tone = edge_aware_tone(frame, soft, tone_sigma, floor)
    if residual_factor > 0:
        residual = frame - soft - tone
        if coherence is None:
            trust = residual_trust(residual, weight, residual_factor, frame=frame)
        else:
            # Across a motion boundary the reference is a smear of two motions: trust goes no
            # higher than the coherence there unless the residual is ordinary (no allowance).
            lenient = residual_trust(
                residual, weight, residual_factor, frame=frame, coherence=coherence
            )
            strict = residual_trust(residual, weight, residual_factor)
            trust = np.minimum(lenient, np.maximum(coherence, strict))
        weight = np.minimum(weight, trust)
    if erode > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * erode + 1,) * 2)
        weight = cv2.erode(weight, kernel, borderType=cv2.BORDER_REPLICATE)
    weight = np.clip(blur(weight, feather), 0.0, 1.0)
    return weight.astype(np.float32), tone
