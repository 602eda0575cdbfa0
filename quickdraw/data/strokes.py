"""Packed stroke batches: the one in-memory form of drawings between Parquet, augmentation and the rasteriser.

A batch of B drawings is three flat arrays (the same layout Arrow uses for
``list<list<uint8>>``), so a whole batch moves through numpy without a Python object per point:

* ``points``          (P, 2) float32 or uint8, x and y in the 0-255 Quick, Draw! frame
* ``stroke_offsets``  (S + 1,) int64, stroke s is ``points[stroke_offsets[s]:stroke_offsets[s + 1]]``
* ``drawing_offsets`` (B + 1,) int64, drawing b is strokes ``drawing_offsets[b]:drawing_offsets[b + 1]``
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

# One drawing as Quick, Draw! writes it: a list of strokes, each ``[xs, ys]`` (raw data adds ``ts``).
Drawing = Sequence[Sequence[Sequence[float]]]


@dataclass
class StrokeBatch:
    points: np.ndarray
    stroke_offsets: np.ndarray
    drawing_offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.drawing_offsets) - 1

    @property
    def num_strokes(self) -> np.ndarray:
        """Strokes per drawing, shape (B,)."""
        return np.diff(self.drawing_offsets)

    @property
    def num_points(self) -> np.ndarray:
        """Points per drawing, shape (B,)."""
        return np.diff(self.stroke_offsets[self.drawing_offsets])

    @property
    def point_drawing(self) -> np.ndarray:
        """Index of the drawing each point belongs to, shape (P,)."""
        return np.repeat(np.arange(len(self)), self.num_points)

    @property
    def point_stroke(self) -> np.ndarray:
        """Index of the stroke each point belongs to, shape (P,)."""
        return np.repeat(np.arange(len(self.stroke_offsets) - 1), np.diff(self.stroke_offsets))

    @classmethod
    def from_drawings(cls, drawings: Sequence[Drawing]) -> StrokeBatch:
        """Pack drawings given as JSON-like ``[[xs, ys(, ts)], ...]`` lists (timestamps are dropped)."""
        xs: list[float] = []
        ys: list[float] = []
        stroke_offsets = [0]
        drawing_offsets = [0]
        for drawing in drawings:
            for stroke in drawing:
                sx, sy = stroke[0], stroke[1]
                if len(sx) != len(sy):
                    raise ValueError(f"stroke has {len(sx)} x but {len(sy)} y values")
                xs.extend(sx)
                ys.extend(sy)
                stroke_offsets.append(len(xs))
            drawing_offsets.append(len(stroke_offsets) - 1)
        points = np.stack([np.asarray(xs, np.float32), np.asarray(ys, np.float32)], axis=1)
        return cls(
            points.reshape(-1, 2),
            np.asarray(stroke_offsets, np.int64),
            np.asarray(drawing_offsets, np.int64),
        )

    @classmethod
    def from_arrow(
        cls, x: pa.Array | pa.ChunkedArray, y: pa.Array | pa.ChunkedArray
    ) -> StrokeBatch:
        """Zero-copy-ish view of the ``x``/``y`` ``list<list<uint8>>`` columns of a store table."""
        x = _combine(x)
        y = _combine(y)
        outer = np.asarray(x.offsets, dtype=np.int64)
        inner_arr = x.flatten()
        inner = np.asarray(inner_arr.offsets, dtype=np.int64)
        px = inner_arr.flatten().to_numpy(zero_copy_only=False)
        py = y.flatten().flatten().to_numpy(zero_copy_only=False)
        if len(px) != len(py):
            raise ValueError("x and y columns hold different numbers of points")
        points = np.empty((len(px), 2), dtype=np.uint8)
        points[:, 0] = px
        points[:, 1] = py
        return cls(points, inner - inner[0], outer - outer[0])

    def to_arrow(self) -> tuple[pa.ListArray, pa.ListArray]:
        """The ``x`` and ``y`` columns of a store table (points must already be integers 0-255)."""
        inner = pa.array(self.stroke_offsets.astype(np.int32))
        outer = pa.array(self.drawing_offsets.astype(np.int32))
        pts = np.asarray(self.points)
        cols = []
        for k in range(2):
            values = pa.array(np.ascontiguousarray(pts[:, k]).astype(np.uint8))
            cols.append(pa.ListArray.from_arrays(outer, pa.ListArray.from_arrays(inner, values)))
        return cols[0], cols[1]

    def drawing(self, i: int) -> list[np.ndarray]:
        """The strokes of drawing ``i`` as a list of (N, 2) arrays."""
        s0, s1 = self.drawing_offsets[i], self.drawing_offsets[i + 1]
        return [
            self.points[self.stroke_offsets[s] : self.stroke_offsets[s + 1]] for s in range(s0, s1)
        ]

    def to_drawings(self) -> list[list[list[list[int]]]]:
        """Back to Quick, Draw!'s JSON-like ``[[xs, ys], ...]`` lists (for writing CSV/ndjson)."""
        return [
            [[stroke[:, 0].tolist(), stroke[:, 1].tolist()] for stroke in self.drawing(i)]
            for i in range(len(self))
        ]

    def select(self, index: np.ndarray) -> StrokeBatch:
        """A new batch holding drawings ``index`` (in that order)."""
        index = np.asarray(index, dtype=np.int64)
        s0, s1 = self.drawing_offsets[index], self.drawing_offsets[index + 1]
        stroke_ids = _ranges(s0, s1)
        p0, p1 = self.stroke_offsets[stroke_ids], self.stroke_offsets[stroke_ids + 1]
        point_ids = _ranges(p0, p1)
        stroke_offsets = np.concatenate([[0], np.cumsum(p1 - p0)])
        drawing_offsets = np.concatenate([[0], np.cumsum(s1 - s0)])
        return StrokeBatch(self.points[point_ids], stroke_offsets, drawing_offsets)

    @staticmethod
    def concat(batches: Sequence[StrokeBatch]) -> StrokeBatch:
        """Concatenate batches in order."""
        points, strokes, drawings = [], [np.zeros(1, np.int64)], [np.zeros(1, np.int64)]
        n_points = n_strokes = 0
        for b in batches:
            points.append(b.points)
            strokes.append(b.stroke_offsets[1:] + n_points)
            drawings.append(b.drawing_offsets[1:] + n_strokes)
            n_points += len(b.points)
            n_strokes += len(b.stroke_offsets) - 1
        if not points:
            return StrokeBatch(np.zeros((0, 2), np.float32), strokes[0], drawings[0])
        return StrokeBatch(
            np.concatenate(points), np.concatenate(strokes), np.concatenate(drawings)
        )


def _combine(a: pa.Array | pa.ChunkedArray) -> pa.Array:
    return a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a


def _ranges(starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(starts[i], stops[i])`` for all i, without a Python loop."""
    lengths = stops - starts
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    out = np.ones(total, np.int64)
    ends = np.cumsum(lengths)
    nonempty = lengths > 0
    first = np.concatenate([[0], ends[:-1]])[nonempty]
    out[first] = starts[nonempty]
    out[first[1:]] -= stops[nonempty][:-1] - 1
    return np.cumsum(out)
