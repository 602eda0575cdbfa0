"""One drawing photographed as made with any pen, ink, paper and light: what image tracing is measured on.

Issue 17 asks that an upload give nearly the model input of a clean thin drawing of the same
lines, whatever the pen's width (1-10 % of the image), the colours, transparency or uneven light.
The tests (`tests/test_real_world_inputs.py`) and the bench (`python -m benchmarks.images`) draw
this family and score it with [`model_input`][quickdraw.testing.pen_images.model_input] and [`iou`][quickdraw.testing.pen_images.iou].
"""

from __future__ import annotations

import cv2
import numpy as np

from quickdraw.data.parsing import parse_drawing
from quickdraw.data.raster import RasterSpec
from quickdraw.data.strokes import StrokeBatch

# A house on a 300 px sheet: straight lines, sharp corners (the roof's apex sets the height) and
# T-junctions where the door meets the ground, so corners, ends and junctions are all tested.
HOUSE = [((60, 240), (60, 120)), ((60, 120), (150, 50)), ((150, 50), (240, 120)), ((240, 120), (240, 240)),
         ((240, 240), (60, 240)), ((120, 240), (120, 170)), ((120, 170), (170, 170)), ((170, 170), (170, 240))]  # fmt: skip
# name: (ink, paper, uneven light, transparent background)
LOOKS = {
    "black on white": ((0, 0, 0), (255, 255, 255), False, False),
    "blue, tinted paper, lamp": ((30, 30, 200), (200, 230, 240), True, False),
    "white on dark": ((255, 255, 255), (20, 40, 30), False, False),
    "green on transparent": ((10, 60, 10), (0, 0, 0), False, True),
}


def pen_drawing(side: int, pen: float, look: tuple) -> np.ndarray:
    """The house drawn with a `pen` px round pen on a `side` px image of one look (RGB or RGBA)."""
    ink, paper, light, alpha = look
    img = np.full((side, side, 3), paper, np.uint8)
    s = side / 300
    for a, b in HOUSE:
        pa, pb = (round(a[0] * s), round(a[1] * s)), (round(b[0] * s), round(b[1] * s))
        cv2.line(img, pa, pb, ink, max(1, round(pen)), cv2.LINE_AA)
    if light:  # brighter on one side, darker at the bottom, as under a desk lamp
        gain = (
            np.linspace(0.55, 1.1, side)[None, :, None]
            * np.linspace(1.05, 0.7, side)[:, None, None]
        )
        img = np.clip(img * gain, 0, 255).astype(np.uint8)
    if alpha:  # ink on a transparent sheet
        drawn = (np.abs(img.astype(int) - paper).sum(2) > 0).astype(np.uint8) * 255
        img = np.dstack([np.full_like(img, ink), drawn])
    return img


def model_input(strokes: list[np.ndarray]) -> np.ndarray:
    """Traced (x, y) polylines as the model sees them: Google's simplification, 64 px, ink only."""
    drawing = [[s[:, 0].tolist(), s[:, 1].tolist()] for s in strokes]
    batch = StrokeBatch.from_parsed([parse_drawing(drawing, "raw", max_points=65_536)])
    return RasterSpec(size=64)(batch)[0, 0] > 0


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean images."""
    return float((a & b).sum() / (a | b).sum())
