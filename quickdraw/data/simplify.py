"""Google's simplification of raw Quick, Draw! strokes, so raw and simplified inputs share one schema.

The procedure is the one documented for the public ``full/simplified`` files:
align the drawing to the top-left corner, scale it uniformly so the longer side is 255,
resample every stroke at 1-pixel spacing, simplify with Ramer-Douglas-Peucker (epsilon 2.0),
and round to integers.
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
    strokes = [np.asarray(s, dtype=np.float64).reshape(-1, 2) for s in strokes if len(s)]
    if not strokes:
        return []
    allpts = np.concatenate(strokes)
    lo = allpts.min(axis=0)
    extent = float((allpts.max(axis=0) - lo).max())
    scale = 255.0 / extent if extent > 0 else 1.0
    out = []
    for s in strokes:
        s = (s - lo) * scale
        s = rdp(resample(s, spacing=1.0), epsilon)
        s = np.clip(np.rint(s), 0, 255).astype(np.uint8)
        # Rounding can leave repeated points; they carry no information.
        keep = np.ones(len(s), bool)
        keep[1:] = np.any(s[1:] != s[:-1], axis=1)
        out.append(s[keep])
    return out


def resample(points: np.ndarray, spacing: float = 1.0) -> np.ndarray:
    """Points every ``spacing`` units of arc length along the polyline, end points kept."""
    if len(points) < 2:
        return points
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    total = arc[-1]
    if total <= spacing:
        return points[[0, -1]]
    t = np.arange(0.0, total, spacing)
    if total - t[-1] > 1e-9:
        t = np.append(t, total)
    x = np.interp(t, arc, points[:, 0])
    y = np.interp(t, arc, points[:, 1])
    return np.stack([x, y], axis=1)


def rdp(points: np.ndarray, epsilon: float = RDP_EPSILON) -> np.ndarray:
    """Ramer-Douglas-Peucker with an explicit stack (no recursion limit on long strokes)."""
    n = len(points)
    if n < 3:
        return points
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
    return points[keep]
