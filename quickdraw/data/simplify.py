"""Google's simplification of raw Quick, Draw! strokes, so raw and simplified inputs share one schema.

The procedure is the one documented for the public `full/simplified` files:
align the drawing to the top-left corner, scale it uniformly so the longer side is 255,
resample every stroke at 1-pixel spacing, simplify with Ramer-Douglas-Peucker (epsilon 2.0),
and round to integers.

Raw drawings also carry per-point times (ms); [`simplify_timed`][quickdraw.data.simplify.simplify_timed] carries them through: a
kept point that is a raw point keeps that point's time, and a point made by resampling gets the
time interpolated linearly in arc length between the two raw points around it (the pen is taken
to move at constant speed along one raw segment). Where rounding merges repeated points, the
first one (the earliest) is kept with its time.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RDP_EPSILON = 2.0


def simplify_drawing(
    strokes: Sequence[np.ndarray], epsilon: float = RDP_EPSILON
) -> list[np.ndarray]:
    """Simplify one raw drawing given as (N, 2) float arrays; returns (M, 2) uint8 arrays.

    Strokes that shrink to nothing are dropped; a drawing with no extent (a single dot) keeps its points.
    """
    return simplify_timed(strokes, None, epsilon)[0]


def simplify_timed(
    strokes: Sequence[np.ndarray],
    times: Sequence[np.ndarray] | None,
    epsilon: float = RDP_EPSILON,
) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
    """[`simplify_drawing`][quickdraw.data.simplify.simplify_drawing] that also carries `times` ((N,) ms per raw stroke, or None).

    Returns the (M, 2) uint8 strokes and, when `times` is given, their (M,) float64 times.
    """
    pairs = [
        (np.asarray(s, dtype=np.float64).reshape(-1, 2), None if times is None else times[i])
        for i, s in enumerate(strokes)
        if len(s)
    ]
    if not pairs:
        return [], None if times is None else []
    allpts = np.concatenate([s for s, _ in pairs])
    lo = allpts.min(axis=0)
    extent = float((allpts.max(axis=0) - lo).max())
    scale = 255.0 / extent if extent > 0 else 1.0
    out, out_times = [], []
    for s, t in pairs:
        s, t = resample_timed((s - lo) * scale, 1.0, t)
        keep = rdp_mask(s, epsilon)
        s = np.clip(np.rint(s[keep]), 0, 255).astype(np.uint8)
        # Rounding can leave repeated points; they carry no information.
        unique = np.ones(len(s), bool)
        unique[1:] = np.any(s[1:] != s[:-1], axis=1)
        out.append(s[unique])
        if t is not None:
            out_times.append(np.asarray(t, np.float64)[keep][unique])
    return out, None if times is None else out_times


def resample(points: np.ndarray, spacing: float = 1.0) -> np.ndarray:
    """Points every `spacing` units of arc length along the polyline, end points kept."""
    return resample_timed(points, spacing, None)[0]


def resample_timed(
    points: np.ndarray, spacing: float, times: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """[`resample`][quickdraw.data.simplify.resample], and each new point's time ((N,) ms, or None) interpolated in arc length
    between the raw points around it."""
    t_in = None if times is None else np.asarray(times, np.float64)
    if len(points) < 2:
        return points, t_in
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    total = arc[-1]
    if total <= spacing:
        return points[[0, -1]], None if t_in is None else t_in[[0, -1]]
    t = np.arange(0.0, total, spacing)
    if total - t[-1] > 1e-9:
        t = np.append(t, total)
    x = np.interp(t, arc, points[:, 0])
    y = np.interp(t, arc, points[:, 1])
    # Where the pen rested (zero-length raw segments), `arc` repeats and interp takes the last
    # of those times: the moment the pen moved on.
    return np.stack([x, y], axis=1), None if t_in is None else np.interp(t, arc, t_in)


def rdp(points: np.ndarray, epsilon: float = RDP_EPSILON) -> np.ndarray:
    """Ramer-Douglas-Peucker with an explicit stack (no recursion limit on long strokes)."""
    return points[rdp_mask(points, epsilon)]


def rdp_mask(points: np.ndarray, epsilon: float = RDP_EPSILON) -> np.ndarray:
    """(N,) bool: the points Ramer-Douglas-Peucker keeps (so that values per point can follow)."""
    n = len(points)
    if n < 3:
        return np.ones(n, bool)
    keep = np.zeros(n, bool)
    keep[0] = keep[-1] = True
    stack = [(0, n - 1)]
    while stack:
        i, j = stack.pop()
        if j - i < 2:
            continue
        a, b = points[i], points[j]
        inner = points[i + 1 : j]
        ab = b - a
        norm = float(np.hypot(*ab))
        if norm == 0:
            dist = np.linalg.norm(inner - a, axis=1)
        else:
            dist = np.abs(ab[0] * (inner[:, 1] - a[1]) - ab[1] * (inner[:, 0] - a[0])) / norm
        k = int(np.argmax(dist))
        if dist[k] > epsilon:
            m = i + 1 + k
            keep[m] = True
            stack.append((i, m))
            stack.append((m, j))
    return keep
