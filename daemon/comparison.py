"""The one comparison picture lmd makes of a restoration: `lmd demo`, `lmd restore --compare`
and the review page's strip (`daemon.review.previews`) all call `comparison_image`.

Why one layout: a person comparing the demo's picture with one from the command line or the
review page should see the same thing in the same place. Layout (RGB uint8):

    ┌ reselected frame ┐ ┌ restored ┐ ┌ original key photo ┐   whole pictures, one height,
    │                  │ │          │ │                    │   the crop's place outlined
    └──────────────────┘ └──────────┘ └────────────────────┘
    ┌ frame, 1:1 crop ─┐ ┌ restored,┐ ┌ original, 1:1 crop ┐   the same region of each at
    │                  │ │ 1:1 crop │ │                    │   the restoration's resolution,
    └──────────────────┘ └──────────┘ └────────────────────┘   one image pixel per pixel

Each panel has its label in a dark band above it (never drawn over the picture). The frame and
the reference are first brought to the restoration's size, as the restorer sees them, so the
1:1 crops show the same region; the reference was taken at another moment, so its content may
be shifted, which is the point of showing it.
"""

from __future__ import annotations

import cv2
import numpy as np

from daemon.output.image import to_uint8

PANEL_HEIGHT = 480
"""Height of each whole picture in the top row, in pixels (never more than the restoration)."""
GAP = 8
LABEL_HEIGHT = 26
LABELS = ("reselected frame", "restored", "original key photo (reference)")
CROP_SUFFIX = ", 1:1 crop"
_BACKGROUND = (24, 24, 24)
_TEXT = (240, 240, 240)
_OUTLINE = (255, 210, 0)


def _label(text: str, width: int) -> np.ndarray:
    """A dark band `width` wide with `text` in it, shrunk to fit."""
    band = np.full((LABEL_HEIGHT, width, 3), _BACKGROUND, np.uint8)
    font, scale, thickness = cv2.FONT_HERSHEY_SIMPLEX, 0.55, 1
    (tw, th), _ = cv2.getTextSize(text, font, scale, thickness)
    if tw > width - 8:
        scale *= max(0.2, (width - 8) / tw)
        (tw, th), _ = cv2.getTextSize(text, font, scale, thickness)
    origin = (4, (LABEL_HEIGHT + th) // 2)
    cv2.putText(band, text, origin, font, scale, _TEXT, thickness, cv2.LINE_AA)
    return band


def _row(panels: list[np.ndarray], labels: list[str]) -> np.ndarray:
    height = panels[0].shape[0]
    columns = []
    for panel, label in zip(panels, labels, strict=True):
        columns.append(np.concatenate([_label(label, panel.shape[1]), panel], axis=0))
        columns.append(np.full((LABEL_HEIGHT + height, GAP, 3), 255, np.uint8))
    return np.concatenate(columns[:-1], axis=1)


def comparison_image(
    frame: np.ndarray,
    restored: np.ndarray,
    reference: np.ndarray,
    height: int = PANEL_HEIGHT,
    center: tuple[float, float] = (0.5, 0.5),
) -> np.ndarray:
    """frame | restored | reference, whole and as 1:1 crops around `center` (fractions of
    width and height of the restoration). Images: H×W×3 RGB, uint8 or float in [0, 1]."""
    images = [to_uint8(i) for i in (frame, restored, reference)]
    h, w = images[1].shape[:2]
    # the inputs at the restoration's size, as the restorer sees them
    same = [img if img.shape[:2] == (h, w)
            else cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if img.shape[0] > h
                            else cv2.INTER_CUBIC)
            for img in images]
    height = max(1, min(height, h))
    panel_w = max(1, round(w * height / h))
    whole = [cv2.resize(img, (panel_w, height), interpolation=cv2.INTER_AREA) for img in same]

    crop_w, crop_h = min(panel_w, w), min(height, h)
    left = int(np.clip(round(center[0] * w - crop_w / 2), 0, w - crop_w))
    top = int(np.clip(round(center[1] * h - crop_h / 2), 0, h - crop_h))
    crops = []
    for img in same:
        crop = np.full((height, panel_w, 3), _BACKGROUND, np.uint8)
        crop[:crop_h, :crop_w] = img[top : top + crop_h, left : left + crop_w]
        crops.append(crop)
    sx, sy = panel_w / w, height / h
    for panel in whole:  # where the crop is, on each whole picture
        cv2.rectangle(panel, (round(left * sx), round(top * sy)),
                      (round((left + crop_w) * sx) - 1, round((top + crop_h) * sy) - 1),
                      _OUTLINE, 1)
    gap = np.full((GAP, 3 * panel_w + 2 * GAP, 3), 255, np.uint8)
    return np.concatenate([
        _row(whole, list(LABELS)),
        gap,
        _row(crops, [label.split(" (")[0] + CROP_SUFFIX for label in LABELS]),
    ], axis=0)
