"""Packed stroke batches: the one in-memory form of drawings between Parquet, augmentation and the rasteriser.

A batch of B drawings is three flat arrays (the layout Arrow uses for nested lists), so a whole
batch moves through numpy without a Python object per point:

* `points`          (P, 2) float32 or uint8, x and y in the 0-255 Quick, Draw! frame
* `stroke_offsets`  (S + 1,) int64, stroke s is `points[stroke_offsets[s]:stroke_offsets[s + 1]]`
* `drawing_offsets` (B + 1,) int64, drawing b is strokes `drawing_offsets[b]:drawing_offsets[b + 1]`
* `times`           (P,) float32 or None, ms since the drawing's first point, where the source
  recorded them (Google's raw ndjson, Kaggle's raw CSV, the demo); None for simplified sources

`to_arrow` and `from_arrow` are the store's one encoder and one decoder of strokes (and
`times_to_arrow` / `times_from_arrow` of times).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from quickdraw.core.errors import InputError
from quickdraw.data import varint

# One drawing as Quick, Draw! writes it: a list of strokes, each `[xs, ys]` (raw data adds `ts`).
Drawing = Sequence[Sequence[Sequence[float]]]


@dataclass
class StrokeBatch:
    points: np.ndarray
    stroke_offsets: np.ndarray
    drawing_offsets: np.ndarray
    times: np.ndarray | None = None

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
        """Pack drawings given as JSON-like `[[xs, ys(, ts)], ...]` lists, as they are (no
        simplification); `times` are kept when every stroke has `ts`."""
        xs: list[float] = []
        ys: list[float] = []
        ts: list[float] | None = []
        stroke_offsets = [0]
        drawing_offsets = [0]
        for drawing in drawings:
            for stroke in drawing:
                sx, sy = stroke[0], stroke[1]
                if len(sx) != len(sy):
                    raise InputError(f"stroke has {len(sx)} x but {len(sy)} y values")
                if len(stroke) < 3:
                    ts = None
                elif ts is not None:
                    if len(stroke[2]) != len(sx):
                        raise InputError(f"stroke has {len(sx)} points but {len(stroke[2])} times")
                    ts.extend(stroke[2])
                xs.extend(sx)
                ys.extend(sy)
                stroke_offsets.append(len(xs))
            drawing_offsets.append(len(stroke_offsets) - 1)
        points = np.stack([np.asarray(xs, np.float32), np.asarray(ys, np.float32)], axis=1)
        return cls(
            points.reshape(-1, 2),
            np.asarray(stroke_offsets, np.int64),
            np.asarray(drawing_offsets, np.int64),
            None if ts is None else np.asarray(ts, np.float32),
        )

    @classmethod
    def from_parsed(cls, drawings: Sequence[tuple]) -> StrokeBatch:
        """Pack drawings parsed by [`quickdraw.data.parsing.parse_timed_drawing`][quickdraw.data.parsing.parse_timed_drawing]: each a
        `(points (P, 2), stroke_lengths (S,))` pair, points in the 0-255 frame, or a
        `(points, stroke_lengths, times (P,) | None)` triple; `times` are kept when every
        drawing has them."""
        if not drawings:
            return cls(np.zeros((0, 2), np.float32), np.zeros(1, np.int64), np.zeros(1, np.int64))
        lengths = [np.asarray(d[1], np.int64) for d in drawings]
        stroke_offsets = np.zeros(sum(len(n) for n in lengths) + 1, np.int64)
        np.cumsum(np.concatenate(lengths), out=stroke_offsets[1:])
        drawing_offsets = np.zeros(len(drawings) + 1, np.int64)
        np.cumsum([len(n) for n in lengths], out=drawing_offsets[1:])
        points = np.concatenate([np.asarray(d[0], np.float32).reshape(-1, 2) for d in drawings])
        times = [d[2] if len(d) > 2 else None for d in drawings]
        timed = all(t is not None for t in times)
        return cls(
            points,
            stroke_offsets,
            drawing_offsets,
            np.concatenate(times).astype(np.float32) if timed else None,
        )

    @classmethod
    def from_arrow(
        cls,
        points: pa.Array | pa.ChunkedArray,
        stroke_lengths: pa.Array | pa.ChunkedArray,
        times: pa.Array | pa.ChunkedArray | None = None,
    ) -> StrokeBatch:
        """Decode the `points`, `stroke_lengths` (and `times`, where the table has that
        column) columns of a store table (see `to_arrow`, `times_to_arrow`).

        Vectorised over the whole batch: one uint8 running sum undoes the deltas, and the sum where
        each drawing starts is subtracted from its points so that every drawing starts afresh.
        """
        points = _combine(points)
        stroke_lengths = _combine(stroke_lengths)
        n = len(points)
        if n != len(stroke_lengths):
            raise InputError("points and stroke_lengths columns hold different numbers of rows")
        if points.type != pa.binary():
            raise InputError(f"points column is {points.type}, not binary")
        if n == 0:
            return cls(np.zeros((0, 2), np.uint8), np.zeros(1, np.int64), np.zeros(1, np.int64))
        _, offsets, data = points.buffers()
        byte_offsets = np.frombuffer(offsets, np.int32, n + 1, 4 * points.offset)
        b0, b1 = int(byte_offsets[0]), int(byte_offsets[-1])
        deltas = np.frombuffer(data, np.uint8, b1 - b0, b0) if b1 > b0 else np.zeros(0, np.uint8)
        lengths = stroke_lengths.flatten().to_numpy(zero_copy_only=False)
        stroke_offsets = np.empty(len(lengths) + 1, np.int64)
        stroke_offsets[0] = 0
        np.cumsum(lengths, out=stroke_offsets[1:])
        outer = np.asarray(stroke_lengths.offsets, dtype=np.int64)
        drawing_offsets = outer - outer[0]
        point_offsets = stroke_offsets[drawing_offsets]
        # Equal byte offsets also mean every drawing has an even number of bytes.
        if (2 * point_offsets != byte_offsets - b0).any():
            raise InputError("stroke_lengths do not add up to the points of each drawing")
        # running[k] = sum of the first k deltas (mod 256); a drawing's points are its running
        # sums minus the one where it starts.
        running = np.empty((len(deltas) // 2 + 1, 2), np.uint8)
        running[0] = 0
        np.cumsum(deltas.reshape(-1, 2), axis=0, dtype=np.uint8, out=running[1:])
        out = running[1:]
        out -= np.repeat(running[point_offsets[:-1]], np.diff(point_offsets), axis=0)
        return cls(out, stroke_offsets, drawing_offsets, times_from_arrow(times, point_offsets))

    def to_arrow(self) -> tuple[pa.BinaryArray, pa.ListArray]:
        """The `points` and `stroke_lengths` columns of a store table (schema version 2).

        `points` holds one value per drawing: its points as interleaved bytes `x0 y0 x1 y1 ...`,
        each the difference from the drawing's previous point modulo 256 (the first point's from
        (0, 0)), so that zstd sees small, repetitive values. `stroke_lengths` lists the points per
        stroke. Points must already be integers 0-255, and strokes at most 65,535 points long.
        """
        drawing_offsets = np.asarray(self.drawing_offsets, np.int64)
        stroke_offsets = np.asarray(self.stroke_offsets, np.int64)
        stroke_offsets = stroke_offsets[drawing_offsets[0] : drawing_offsets[-1] + 1]
        drawing_offsets = drawing_offsets - drawing_offsets[0]
        lengths = np.diff(stroke_offsets)
        if len(lengths) and int(lengths.max()) > np.iinfo(np.uint16).max:
            raise InputError(f"a stroke has {int(lengths.max())} points; at most 65,535 fit")
        pts = np.asarray(self.points)[stroke_offsets[0] : stroke_offsets[-1]]
        pts = np.ascontiguousarray(pts, dtype=np.uint8)
        point_offsets = (stroke_offsets - stroke_offsets[0])[drawing_offsets]
        if 2 * len(pts) > np.iinfo(np.int32).max:
            raise InputError("too many points for one Arrow binary column (2 GiB)")
        deltas = pts.copy()
        deltas[1:] -= pts[:-1]  # uint8: wraps mod 256
        starts = point_offsets[:-1][np.diff(point_offsets) > 0]
        deltas[starts] = pts[starts]
        points = pa.BinaryArray.from_buffers(
            pa.binary(),
            len(self),
            [None, pa.py_buffer((2 * point_offsets).astype(np.int32)), pa.py_buffer(deltas)],
        )
        stroke_lengths = pa.ListArray.from_arrays(
            pa.array(drawing_offsets.astype(np.int32)), pa.array(lengths.astype(np.uint16))
        )
        return points, stroke_lengths

    def times_to_arrow(self) -> pa.BinaryArray | None:
        """The `times` column of a store table (schema version 3), or None without times.

        One value per drawing: its points' times rounded to whole ms, each as the difference from
        the previous point's (the first point's from 0) in zigzag varints
        ([`quickdraw.data.varint`][quickdraw.data.varint]): a point of a stroke is mostly one byte, a pause a few.
        """
        if self.times is None:
            return None
        so, do = (
            np.asarray(self.stroke_offsets, np.int64),
            np.asarray(self.drawing_offsets, np.int64),
        )
        point_offsets = so[do] - so[do[0]]
        ms = np.rint(np.asarray(self.times, np.float64)[so[do[0]] : so[do[-1]]]).astype(np.int64)
        deltas = ms.copy()
        deltas[1:] -= ms[:-1]
        starts = point_offsets[:-1][np.diff(point_offsets) > 0]
        deltas[starts] = ms[starts]
        data, sizes = varint.encode(deltas)
        byte_offsets = np.concatenate([[0], np.cumsum(sizes)])[point_offsets]
        if byte_offsets[-1] > np.iinfo(np.int32).max:
            raise InputError("too many times for one Arrow binary column (2 GiB)")
        return pa.BinaryArray.from_buffers(
            pa.binary(),
            len(self),
            [None, pa.py_buffer(byte_offsets.astype(np.int32)), pa.py_buffer(data)],
        )

    def drawing(self, i: int) -> list[np.ndarray]:
        """The strokes of drawing `i` as a list of (N, 2) arrays."""
        s0, s1 = self.drawing_offsets[i], self.drawing_offsets[i + 1]
        return [
            self.points[self.stroke_offsets[s] : self.stroke_offsets[s + 1]] for s in range(s0, s1)
        ]

    def to_drawings(self) -> list[list[list[list[int]]]]:
        """Back to Quick, Draw!'s JSON-like `[[xs, ys], ...]` lists (for writing CSV/ndjson)."""
        return [
            [[stroke[:, 0].tolist(), stroke[:, 1].tolist()] for stroke in self.drawing(i)]
            for i in range(len(self))
        ]

    def select(self, index: np.ndarray) -> StrokeBatch:
        """A new batch holding drawings `index` (in that order)."""
        index = np.asarray(index, dtype=np.int64)
        s0, s1 = self.drawing_offsets[index], self.drawing_offsets[index + 1]
        stroke_ids = _ranges(s0, s1)
        p0, p1 = self.stroke_offsets[stroke_ids], self.stroke_offsets[stroke_ids + 1]
        point_ids = _ranges(p0, p1)
        stroke_offsets = np.concatenate([[0], np.cumsum(p1 - p0)])
        drawing_offsets = np.concatenate([[0], np.cumsum(s1 - s0)])
        times = None if self.times is None else self.times[point_ids]
        return StrokeBatch(self.points[point_ids], stroke_offsets, drawing_offsets, times)

    @staticmethod
    def concat(batches: Sequence[StrokeBatch]) -> StrokeBatch:
        """Concatenate batches in order (times are kept only when every batch has them)."""
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
        timed = all(b.times is not None for b in batches)
        return StrokeBatch(
            np.concatenate(points),
            np.concatenate(strokes),
            np.concatenate(drawings),
            np.concatenate([b.times for b in batches]) if timed else None,
        )


def times_from_arrow(
    times: pa.Array | pa.ChunkedArray | None, point_offsets: np.ndarray
) -> np.ndarray | None:
    """(P,) float32 ms from a `times` column (`StrokeBatch.times_to_arrow`); `point_offsets`
    (B + 1,) say where each drawing's points start. None when the column is absent or any drawing
    has no times (a null): a batch has times for all its drawings or for none."""
    if times is None:
        return None
    times = _combine(times)
    if times.null_count or len(times) != len(point_offsets) - 1:
        return None
    if times.type != pa.binary():
        raise InputError(f"times column is {times.type}, not binary")
    _, offsets, data = times.buffers()
    n = len(times)
    byte_offsets = np.frombuffer(offsets, np.int32, n + 1, 4 * times.offset).astype(np.int64)
    b0, b1 = int(byte_offsets[0]), int(byte_offsets[-1])
    deltas, last = varint.decode(np.frombuffer(data, np.uint8, b1 - b0, b0) if b1 > b0 else [])
    # Values ending before each drawing's first byte must be the points before it.
    ended = np.concatenate([[0], np.cumsum(last)])[byte_offsets - b0]
    if not np.array_equal(ended, point_offsets):
        raise InputError("times do not hold one value per point of each drawing")
    running = np.zeros(len(deltas) + 1, np.int64)
    np.cumsum(deltas, out=running[1:])
    ms = running[1:] - np.repeat(running[point_offsets[:-1]], np.diff(point_offsets))
    return ms.astype(np.float32)


def _combine(a: pa.Array | pa.ChunkedArray) -> pa.Array:
    return a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a


def _ranges(starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """Concatenation of `arange(starts[i], stops[i])` for all i, without a Python loop."""
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
