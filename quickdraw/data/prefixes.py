"""Unfinished drawings: prefixes of the drawings of a StrokeBatch, by strokes, by ink or by time.

What a player had drawn when the game interrupted them. Three ways to cut a drawing short:

* `strokes`: its first k strokes (1 <= k <= S);
* `ink`: its first fraction f of arc length, summed within strokes (pen-up jumps are not ink);
  the stroke being drawn is cut mid-segment at a point interpolated there (times too). A
  drawing with no ink (only single-point strokes) is kept whole;
* `time`: the points drawn within the first fraction f of its duration (`StrokeBatch.times`,
  ms since the first point; `ValueError` without them). Pen samples are dense, so no point is
  interpolated.

Every prefix keeps at least a drawing's first point: a prefix is never empty unless its drawing
is. Each function takes per-prefix arrays (`drawing` (M,) indices into the batch, and k or f
(M,)) and returns a new M-drawing batch, vectorised over the packed arrays: evaluation asks for
many prefixes of each drawing ([`growing_prefixes`][quickdraw.data.prefixes.growing_prefixes]), training augmentation for one random
prefix of some ([`quickdraw.data.augment`][quickdraw.data.augment]).
"""

from __future__ import annotations

import numpy as np

from quickdraw.core.errors import InputError, SettingError
from quickdraw.data.strokes import StrokeBatch, _ranges

PREFIX_KINDS = ("strokes", "ink", "time")
TENTHS = np.round(np.arange(1, 11) / 10, 1)  # 0.1 ... 1.0: the ink and time prefixes evaluated


def check_kind(by: str) -> str:
    if by not in PREFIX_KINDS:
        raise SettingError(f"prefix kind must be one of {', '.join(PREFIX_KINDS)}, got {by!r}")
    return by


def stroke_prefix(batch: StrokeBatch, drawing: np.ndarray, k: np.ndarray) -> StrokeBatch:
    """The first `k[m]` strokes of drawing `drawing[m]` (k clipped to 1..S), for every m."""
    drawing = np.asarray(drawing, np.int64)
    s0 = batch.drawing_offsets[drawing]
    n = np.clip(np.asarray(k, np.int64), 1, batch.num_strokes[drawing])
    n = np.where(batch.num_strokes[drawing] == 0, 0, n)
    first = batch.stroke_offsets[s0]
    return _point_prefix(batch, drawing, batch.stroke_offsets[s0 + n] - first)


def ink_prefix(batch: StrokeBatch, drawing: np.ndarray, fraction: np.ndarray) -> StrokeBatch:
    """The first `fraction[m]` (0-1) of the ink of drawing `drawing[m]`, for every m."""
    drawing = np.asarray(drawing, np.int64)
    if len(batch.points) == 0:  # only empty drawings
        return _point_prefix(batch, drawing, np.zeros(len(drawing), np.int64))
    ink = _cumulative_ink(batch)  # (P,) ink drawn up to each point, 0 at each drawing's start
    start = batch.stroke_offsets[batch.drawing_offsets]
    total = np.where(batch.num_points > 0, ink[np.maximum(start[1:] - 1, 0)], 0.0)
    fraction = np.clip(np.asarray(fraction, np.float64), 0, 1)
    cut = fraction * total[drawing]
    ids, owner = _drawing_points(batch, drawing)
    # Points strictly before the cut: a stroke that ends exactly there does not start the next one.
    kept = np.bincount(owner[ink[ids] < cut[owner]], minlength=len(drawing))
    n = batch.num_points[drawing]
    kept = np.where((fraction >= 1) | (total[drawing] == 0), n, np.maximum(kept, np.minimum(1, n)))
    # The point after the cut is in the same stroke (a stroke's first point adds no ink), except
    # after a leading dot at fraction 0: interpolate the cut point on that segment.
    split = kept < n
    split[split] = (
        batch.point_stroke[start[drawing[split]] + kept[split]]
        == batch.point_stroke[start[drawing[split]] + kept[split] - 1]
    )
    a = start[drawing[split]] + kept[split] - 1
    w = (cut[split] - ink[a]) / np.maximum(ink[a + 1] - ink[a], 1e-9)
    w = np.clip(w, 0, 1).astype(np.float32)
    points = batch.points[a].astype(np.float32) + w[:, None] * (
        batch.points[a + 1].astype(np.float32) - batch.points[a].astype(np.float32)
    )
    times = None
    if batch.times is not None:
        times = batch.times[a] + w * (batch.times[a + 1] - batch.times[a])
    return _point_prefix(batch, drawing, kept, (split, points, times))


def time_prefix(batch: StrokeBatch, drawing: np.ndarray, fraction: np.ndarray) -> StrokeBatch:
    """The points of drawing `drawing[m]` drawn within its first `fraction[m]` of its duration."""
    if batch.times is None:
        raise InputError(
            "prefixes by time need per-point times, and these drawings have none: only Google's "
            "raw ndjson and Kaggle's raw CSV record them; use prefix=strokes or prefix=ink"
        )
    drawing = np.asarray(drawing, np.int64)
    if len(batch.points) == 0:
        return _point_prefix(batch, drawing, np.zeros(len(drawing), np.int64))
    start = batch.stroke_offsets[batch.drawing_offsets]
    last = np.maximum(start[1:] - 1, 0)
    duration = np.where(batch.num_points > 0, batch.times[last] - batch.times[start[:-1]], 0)
    cut = np.clip(np.asarray(fraction, np.float64), 0, 1) * duration[drawing]
    ids, owner = _drawing_points(batch, drawing)
    elapsed = batch.times[ids] - batch.times[start[drawing]][owner]
    kept = np.bincount(owner[elapsed <= cut[owner]], minlength=len(drawing))
    return _point_prefix(batch, drawing, np.maximum(kept, np.minimum(1, batch.num_points[drawing])))


def growing_prefixes(
    batch: StrokeBatch, by: str, fractions: np.ndarray = TENTHS
) -> tuple[StrokeBatch, np.ndarray, np.ndarray]:
    """Every prefix evaluation scores: `(prefixes, drawing (M,), fraction (M,))`.

    `strokes`: after 1, 2, ..., S strokes, fraction k/S; `ink` and `time`: at each of
    `fractions`. Prefixes of a drawing are consecutive and growing; the last one is the whole
    drawing (fraction 1.0), point for point.
    """
    if check_kind(by) == "strokes":
        s = np.maximum(batch.num_strokes, 1)  # an empty drawing: one (empty) prefix
        drawing = np.repeat(np.arange(len(batch)), s)
        k = _ranges(np.zeros_like(s), s) + 1
        return stroke_prefix(batch, drawing, k), drawing, k / s[drawing]
    drawing = np.repeat(np.arange(len(batch)), len(fractions))
    fraction = np.tile(np.asarray(fractions, np.float64), len(batch))
    cut = ink_prefix if by == "ink" else time_prefix
    return cut(batch, drawing, fraction), drawing, fraction


# -- the packed arrays -----------------------------------------------------------------------------
def _cumulative_ink(batch: StrokeBatch) -> np.ndarray:
    """(P,) float64 arc length from each drawing's first point, within strokes only."""
    pts = batch.points.astype(np.float64)
    step = np.zeros(len(pts))
    if len(pts) > 1:
        step[1:] = np.hypot(*(pts[1:] - pts[:-1]).T)
    step[batch.stroke_offsets[:-1][np.diff(batch.stroke_offsets) > 0]] = 0  # pen moved, not drawn
    ink = np.cumsum(step)
    start = batch.stroke_offsets[batch.drawing_offsets[:-1]]
    first = np.where(batch.num_points > 0, ink[np.minimum(start, len(ink) - 1)], 0)
    return ink - np.repeat(first, batch.num_points)


def _drawing_points(batch: StrokeBatch, drawing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Point ids of every drawing `drawing[m]` in turn, and the m each belongs to."""
    start = batch.stroke_offsets[batch.drawing_offsets]
    ids = _ranges(start[drawing], start[drawing + 1])
    return ids, np.repeat(np.arange(len(drawing)), batch.num_points[drawing])


def _point_prefix(
    batch: StrokeBatch, drawing: np.ndarray, kept: np.ndarray, extra: tuple | None = None
) -> StrokeBatch:
    """Drawing `drawing[m]` cut after its first `kept[m]` points, for every m.

    `extra` = `(mask (M,), points (E, 2), times (E,) or None)` appends one point to the last
    stroke of each prefix `mask` selects (E of them). Strokes left without points are dropped.
    """
    start = batch.stroke_offsets[batch.drawing_offsets[drawing]]
    ids = _ranges(start, start + kept)
    owner = np.repeat(np.arange(len(drawing)), kept)
    stroke = batch.point_stroke[ids]
    points, times = batch.points[ids], None if batch.times is None else batch.times[ids]
    if extra is not None and extra[0].any():
        at = np.cumsum(kept)[extra[0]]  # after the last kept point of each cut prefix
        points = np.insert(points.astype(np.float32), at, extra[1], axis=0)
        stroke, owner = np.insert(stroke, at, stroke[at - 1]), np.insert(owner, at, owner[at - 1])
        if times is not None:
            times = np.insert(times, at, extra[2])
    # A new stroke wherever the source stroke or the prefix changes.
    new = np.ones(len(stroke), bool)
    new[1:] = (stroke[1:] != stroke[:-1]) | (owner[1:] != owner[:-1])
    stroke_starts = np.flatnonzero(new)
    stroke_offsets = np.append(stroke_starts, len(stroke)).astype(np.int64)
    drawing_offsets = np.zeros(len(drawing) + 1, np.int64)
    np.cumsum(np.bincount(owner[stroke_starts], minlength=len(drawing)), out=drawing_offsets[1:])
    return StrokeBatch(points, stroke_offsets, drawing_offsets, times)
