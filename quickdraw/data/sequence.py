"""Strokes to pen moves: the `sequence` input of stroke-sequence networks, built batch-wise in numpy.

Each drawing becomes the list of its points in drawing order, one row `(dx, dy, pen_up)` per
point, the layout of Google's tutorial "Recurrent Neural Networks for Drawing Classification"
(TensorFlow, tensorflow.org/tutorials, the Quick, Draw! RNN):

* `dx, dy`  the move from the previous point of the drawing, in units of the 0-255 frame / 255
  (the first point's move is from (0, 0), so where the drawing starts is kept). The tutorial also
  rescales each drawing to its bounding box; simplified drawings are already scaled to 255 on their
  longer side, so one uniform scale keeps their aspect, as the rasteriser does.
* `pen_up`  1 on the last point of each stroke (the pen is lifted after it), else 0.

Truncation: a drawing longer than `max_points` keeps its first `max_points` points. The start of
a drawing is what a player draws first and what the game recognises from; resampling would change
the spacing the network sees on long drawings only. Simplified Quick, Draw! drawings have ~45
points on average, and few exceed 128 (the default).

A batch is padded to its longest (truncated) drawing, not to `max_points`: `points` (B, T, 3)
float32 with zeros after each drawing's end, `lengths` (B,) int64 (0 for an empty drawing).
Stroke augmentation happens before, on the StrokeBatch, as for images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from quickdraw.core.errors import SettingError
from quickdraw.data.strokes import StrokeBatch

FEATURES = 3  # dx, dy, pen_up
FRAME = 255.0


class Sequences(NamedTuple):
    """A padded batch of pen moves: `points` (B, T, 3) float32 and `lengths` (B,) int64."""

    points: np.ndarray
    lengths: np.ndarray


@dataclass(frozen=True)
class SequenceSpec:
    """How drawings become pen-move sequences; stored in checkpoints, so only plain fields."""

    max_points: int = 128  # longer drawings keep their first max_points points (module docstring)

    def __post_init__(self) -> None:
        if self.max_points < 1:
            raise SettingError(f"max_points must be at least 1, got {self.max_points}")

    @property
    def channels(self) -> int:
        """Features per point: what the network's first layer takes."""
        return FEATURES

    def describe(self) -> str:
        return f"pen moves (dx, dy, pen up), first {self.max_points} points"

    def __call__(self, batch: StrokeBatch) -> Sequences:
        return to_sequences(batch, self.max_points)


def to_sequences(batch: StrokeBatch, max_points: int) -> Sequences:
    """(dx, dy, pen_up) rows of each drawing's first `max_points` points, padded (module docstring)."""
    n = len(batch)
    so, do = batch.stroke_offsets, batch.drawing_offsets
    starts = so[do]  # (B + 1,) first point of each drawing, and the end of the last
    counts = np.diff(starts)
    lengths = np.minimum(counts, max_points)
    steps = int(lengths.max()) if n else 0
    out = np.zeros((n, steps, FEATURES), np.float32)
    if steps == 0:
        return Sequences(out, lengths.astype(np.int64))
    p0, p1 = int(starts[0]), int(starts[-1])
    # Position of every point in its drawing; the kept ones are those before max_points.
    drawing = np.repeat(np.arange(n), counts)
    position = np.arange(p1 - p0) - np.repeat(starts[:-1] - p0, counts)
    kept = position < max_points
    xy = batch.points[p0:p1].astype(np.float32) * np.float32(1 / FRAME)
    moves = np.empty_like(xy)
    moves[0] = xy[0]
    np.subtract(xy[1:], xy[:-1], out=moves[1:])
    first = starts[:-1][counts > 0] - p0
    moves[first] = xy[first]
    pen_up = np.zeros(p1 - p0, np.float32)
    stroke_ends = so[1:][np.diff(so) > 0] - 1 - p0
    pen_up[stroke_ends[(stroke_ends >= 0) & (stroke_ends < p1 - p0)]] = 1
    flat = out.reshape(-1, FEATURES)
    rows = drawing[kept] * steps + position[kept]
    flat[rows, :2] = moves[kept]
    flat[rows, 2] = pen_up[kept]
    return Sequences(out, lengths.astype(np.int64))
