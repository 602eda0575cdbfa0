"""Shape templates for the synthetic doodle set: which parts a class has and how a person strokes them.

Coordinates are in a unit frame around the origin; [`quickdraw.data.synthetic`][quickdraw.data.synthetic] places,
warps and pens them. A template returns strokes, each a list of pieces joined at corners.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

Stroke = list[np.ndarray]  # pieces (k, 2) joined end to start; a join is a corner the pen slows at
Shape = Callable[[np.random.Generator], list[Stroke]]


def _pts(*xy: float) -> np.ndarray:
    return np.asarray(xy, dtype=np.float64).reshape(-1, 2)


def _path(v: np.ndarray) -> Stroke:
    """A polyline whose every vertex is a corner."""
    return [v[i : i + 2] for i in range(len(v) - 1)]


def _arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float) -> np.ndarray:
    a = np.linspace(a0, a1, max(6, int(abs(a1 - a0) * 7)))
    return np.stack([cx + rx * np.cos(a), cy + ry * np.sin(a)], axis=1)


def _split(p: np.ndarray, at: Iterable[int]) -> Stroke:
    """Cut a smooth curve into pieces at `at`, where the pen slows (crests, tight bends)."""
    cuts = [0, *at, len(p) - 1]
    return [p[a : b + 1] for a, b in zip(cuts[:-1], cuts[1:], strict=True) if b > a]


def _reverse(stroke: Stroke) -> Stroke:
    return [p[::-1] for p in stroke[::-1]]


def _ends(stroke: Stroke, rng: np.random.Generator, sd: float = 0.05) -> Stroke:
    """Overshoot or stop short at both ends, as a hand does at corners and closures."""
    stroke = [p.copy() for p in stroke]
    for p, a, b in ((stroke[0], 0, 1), (stroke[-1], -1, -2)):
        d = p[a] - p[b]
        n = float(np.hypot(*d))
        if n > 1e-9:
            p[a] += d / n * max(rng.normal(0.01, sd), -0.4 * n)
    return stroke


def rotate(v: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return v @ np.array([[c, s], [-s, c]])


def _polygon(v: np.ndarray, rng: np.random.Generator, max_strokes: int = 4) -> list[Stroke]:
    """A closed outline: one stroke from a random corner, or a few strokes in a random order."""
    n = len(v)
    order = np.roll(np.arange(n), -rng.integers(n))[:: random_sign(rng)]
    loop = np.append(order, order[0])
    k = 1
    if max_strokes > 1 and rng.random() > 0.55:
        k = int(rng.integers(2, min(n, max_strokes) + 1))
    cuts = [0, *sorted(rng.permutation(np.arange(1, n))[: k - 1]), n]
    strokes = [_path(v[loop[a : b + 1]]) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    strokes = [_reverse(s) if rng.random() < 0.25 else s for s in strokes]
    if rng.random() < 0.3:
        rng.shuffle(strokes)
    return [_ends(s, rng) for s in strokes]


def random_sign(rng: np.random.Generator, p: float = 0.5) -> int:
    """+1 with probability `p`, else -1 (`rng.choice` costs ten times more per call)."""
    return 1 if rng.random() < p else -1


def _jit(rng: np.random.Generator, v: np.ndarray, sd: float = 0.05) -> np.ndarray:
    return v + rng.normal(0.0, sd, v.shape)


def circle(rng: np.random.Generator) -> list[Stroke]:
    a0, turn = rng.uniform(0, 2 * np.pi), random_sign(rng, 0.65)
    a = a0 + turn * np.linspace(0, 2 * np.pi + rng.normal(0.2, 0.15), 48)
    r = 1 + rng.normal(0, 0.06) * (a - a0) / (2 * np.pi)  # radius drifts, so ends rarely meet
    p = np.stack([r * np.cos(a), rng.uniform(0.8, 1.2) * r * np.sin(a)], axis=1)
    if rng.random() < 0.12:  # in two arcs
        return [_ends([p[:25]], rng), _ends([p[24:]], rng)]
    return [_split(p, (12, 24, 36))]


def square(rng: np.random.Generator) -> list[Stroke]:
    h = rng.uniform(0.8, 1.2)
    return _polygon(_jit(rng, _pts(-1, -h, 1, -h, 1, h, -1, h), 0.04), rng)


def triangle(rng: np.random.Generator) -> list[Stroke]:
    h, apex = rng.uniform(0.75, 1.1), rng.normal(0, 0.2)
    return _polygon(_jit(rng, _pts(apex, -h, 1, h, -1, h), 0.04), rng, 3)


def star(rng: np.random.Generator) -> list[Stroke]:
    if rng.random() < 0.55:  # pentagram in one go
        a = -np.pi / 2 + np.arange(5) * 4 * np.pi / 5
        return _polygon(_jit(rng, np.stack([np.cos(a), np.sin(a)], 1), 0.05), rng, 2)
    a = -np.pi / 2 + np.arange(10) * np.pi / 5
    r = np.where(np.arange(10) % 2, rng.uniform(0.35, 0.55), 1.0)
    return _polygon(_jit(rng, np.stack([r * np.cos(a), r * np.sin(a)], 1), 0.04), rng, 2)


def zigzag(rng: np.random.Generator) -> list[Stroke]:
    n = int(rng.integers(5, 12))
    x = np.linspace(-1, 1, n) + rng.normal(0, 0.2 / n, n)
    y = rng.uniform(0.15, 0.45) * np.where(np.arange(n) % 2, 1, -1) * random_sign(rng)
    return [_ends(_path(_jit(rng, np.stack([x, y], 1), 0.03)), rng)]


def spiral(rng: np.random.Generator) -> list[Stroke]:
    turns = rng.uniform(2, 4.5)
    a = np.linspace(0, 2 * np.pi * turns, int(24 * turns))
    r = (a / a[-1]) ** rng.uniform(0.8, 1.2) * (1 + rng.normal(0, 0.04, len(a)).cumsum() / 8)
    p = np.stack([r * np.cos(a), r * np.sin(a) * random_sign(rng)], 1)
    p = p if rng.random() < 0.75 else p[::-1]  # most start in the middle
    return [_ends(_split(p, range(12, len(p) - 1, 12)), rng)]


def house(rng: np.random.Generator) -> list[Stroke]:
    w, top, apex = rng.uniform(0.6, 1.0), rng.uniform(-0.3, 0.1), rng.normal(0, 0.08)
    body = _jit(rng, _pts(-w, top, -w, 1, w, 1, w, top), 0.03)
    roof = _jit(rng, _pts(-w - 0.05, top, apex, -1, w + 0.05, top), 0.03)
    if rng.random() < 0.4:  # the whole outline in one stroke, then maybe the ceiling
        strokes = [_ends(_path(np.concatenate([body, roof[1:2], body[:1]])), rng)]
        strokes += [_ends([body[[0, 3]]], rng)] if rng.random() < 0.6 else []
    else:
        strokes = _polygon(body, rng, 4) + [_ends(_path(roof), rng)]
    side = random_sign(rng)  # door and window on opposite halves
    if rng.random() < 0.7:  # door: three sides, the floor is the wall
        dw = rng.uniform(0.2, 0.35)
        x0 = side * rng.uniform(0.05, w - dw - 0.05) - (side < 0) * dw
        strokes.append(_ends(_path(_pts(x0, 1, x0, 0.45, x0 + dw, 0.45, x0 + dw, 1)), rng, 0.02))
    if rng.random() < 0.5:
        s = rng.uniform(0.2, 0.3)
        x0 = -side * rng.uniform(0.05, w - s - 0.05) - (side > 0) * s
        y0 = rng.uniform(top + 0.1, 0.4)
        strokes += _polygon(_pts(x0, y0, x0 + s, y0, x0 + s, y0 + s, x0, y0 + s), rng, 2)
    if rng.random() < 0.3:
        x0 = apex + rng.uniform(0.25, 0.5) * (w - apex)
        y0 = -1 + (x0 - apex) / (w - apex) * (top + 1)
        y1 = y0 - rng.uniform(0.2, 0.35)
        strokes.append(
            _ends(_path(_pts(x0, y0, x0, y1, x0 + 0.2, y1, x0 + 0.2, y0 + 0.2)), rng, 0.02)
        )
    return strokes


def arrow(rng: np.random.Generator) -> list[Stroke]:
    h, spread = rng.uniform(0.3, 0.55), rng.uniform(0.5, 0.9)
    tip, tail = _pts(1, 0), _pts(-1, rng.normal(0, 0.05))
    if rng.random() < 0.15:  # block arrow outline
        t, hw = rng.uniform(0.12, 0.25), h * spread
        v = _pts(-1, -t, 1 - h, -t, 1 - h, -hw, 1, 0, 1 - h, hw, 1 - h, t, -1, t)
        return _polygon(_jit(rng, v, 0.03), rng, 2)
    arms = _jit(rng, _pts(1 - h, -h * spread, 1 - h, h * spread), 0.04)
    shaft = _ends([np.concatenate([tail, tip])], rng, 0.03)
    if rng.random() < 0.3:
        head = [_ends([np.concatenate([a[None], tip])], rng, 0.03) for a in arms]
    else:
        head = [_ends(_path(np.concatenate([arms[:1], tip, arms[1:]])), rng, 0.03)]
    return [shaft, *head] if rng.random() < 0.8 else [*head, shaft]


def plus(rng: np.random.Generator) -> list[Stroke]:
    if rng.random() < 0.15:  # outlined cross
        t = rng.uniform(0.2, 0.35)
        v = _pts(-t, -1, t, -1, t, -t, 1, -t, 1, t, t, t, t, 1, -t, 1, -t, t, -1, t, -1, -t, -t, -t)
        return _polygon(_jit(rng, v, 0.03), rng, 1)
    cx, cy = rng.normal(0, 0.12, 2)
    lines = [_pts(-1, cy, 1, cy), _pts(cx, -1, cx, 1)]
    lines = [_jit(rng, ln, 0.05)[:: random_sign(rng, 0.8)] for ln in lines]
    return [_ends([ln], rng, 0.03) for ln in lines[:: random_sign(rng)]]


def heart(rng: np.random.Generator) -> list[Stroke]:
    t = np.linspace(0, 2 * np.pi, 49)
    lobes = np.where(t < np.pi, rng.uniform(0.85, 1.15), rng.uniform(0.85, 1.15))
    x = np.sin(t) ** 3 * lobes
    dip = rng.uniform(3, 7)  # how deep the notch between the lobes is
    y = (np.cos(4 * t) + 2 * np.cos(3 * t) + dip * np.cos(2 * t) - 13 * np.cos(t)) / 16
    p = np.stack([x, y], 1)
    if rng.random() < 0.45:  # two halves, each from the dip down to the point
        return [_ends([p[:25]], rng, 0.03), _ends([p[24:][::-1]], rng, 0.03)]
    p = p if rng.random() < 0.5 else p[::-1]
    return [_ends([p[:25], p[24:]], rng, 0.04)]


def wave(rng: np.random.Generator) -> list[Stroke]:
    periods, amp, phase = rng.uniform(1.5, 3.5), rng.uniform(0.15, 0.35), rng.uniform(0, 2 * np.pi)
    x = np.linspace(-1, 1, int(periods * 20))
    rows = 1 if rng.random() < 0.7 else int(rng.integers(2, 4))
    strokes = []
    for dy in np.arange(rows) * rng.uniform(0.5, 0.7):
        y = dy + amp * np.sin(np.pi * periods * (x + 1) + phase) * rng.uniform(0.9, 1.1)
        crests = np.flatnonzero(np.diff(np.sign(np.diff(y)))) + 1
        strokes.append(_ends(_split(np.stack([x, y], 1), crests), rng, 0.03))
    return strokes


def lightning(rng: np.random.Generator) -> list[Stroke]:
    if rng.random() < 0.55:  # the bolt's outline
        v = _pts(0.1, -1, 0.6, -1, 0.15, -0.15, 0.5, -0.15, -0.45, 1, -0.05, 0.15, -0.45, 0.15)
        return _polygon(_jit(rng, v, 0.05), rng, 2)
    v = _jit(rng, _pts(0.3, -1, -0.25, 0.0, 0.25, 0.0, -0.3, 1), 0.06)
    strokes = [_ends(_path(v), rng, 0.03)]
    if rng.random() < 0.4:  # arrowhead at the strike point
        back = (v[-2] - v[-1]) / np.hypot(*(v[-2] - v[-1])) * 0.3
        head = np.stack([v[-1] + rotate(back, 0.6), v[-1], v[-1] + rotate(back, -0.6)])
        strokes.append(_ends(_path(head), rng, 0.02))
    return strokes


def sun(rng: np.random.Generator) -> list[Stroke]:
    rc = rng.uniform(0.35, 0.55)
    disc = [[p * rc for p in piece] for piece in circle(rng)]
    n, turn = int(rng.integers(6, 13)), random_sign(rng)
    a = rng.uniform(0, 2 * np.pi) + turn * np.arange(n) * 2 * np.pi / n + rng.normal(0, 0.08, n)
    r0, r1 = rc * rng.uniform(1.15, 1.4), rng.uniform(0.3, 0.5)
    rays = []
    for ai in a:
        u = np.array([np.cos(ai), np.sin(ai)])
        ray = np.stack([r0 * u, (r0 + r1 * rng.uniform(0.8, 1.2)) * u])
        rays.append(_ends([ray if rng.random() < 0.8 else ray[::-1]], rng, 0.02))
    return disc + rays


def cloud(rng: np.random.Generator) -> list[Stroke]:
    n, ry = int(rng.integers(4, 9)), rng.uniform(0.5, 0.7)
    a = np.linspace(0, 2 * np.pi, n + 1) + rng.uniform(0, 2 * np.pi) + rng.normal(0, 0.1, n + 1)
    a[-1] = a[0] + 2 * np.pi
    base = np.stack([np.cos(a), ry * np.sin(a)], 1)
    bumps, u = [], np.linspace(0, np.pi, 10)[:, None]
    for p, q in zip(base[:-1], base[1:], strict=True):
        m, d = (p + q) / 2, (q - p) / 2
        normal = np.array([d[1], -d[0]]) * rng.uniform(0.7, 1.2)  # points away from the centre
        bumps.append(m - d * np.cos(u) + normal * np.sin(u))
    return [_ends(bumps if rng.random() < 0.6 else _reverse(bumps), rng, 0.03)]


def moon(rng: np.random.Generator) -> list[Stroke]:
    a, inner = rng.uniform(0.6, 1.2), rng.uniform(-0.7, -0.2)
    outer = _arc(0, 0, 1, 1, a, 2 * np.pi - a)
    u = np.linspace(0, np.pi, 16)
    cusp = np.stack([np.cos(a) + (inner - np.cos(a)) * np.sin(u), -np.sin(a) * np.cos(u)], 1)
    if rng.random() < 0.75:
        return [_ends([outer, cusp], rng, 0.03)]
    return [_ends([outer], rng, 0.03), _ends([cusp[:: random_sign(rng)]], rng, 0.03)]


def stray_mark(rng: np.random.Generator) -> Stroke:
    """A stray mark: a dot, a dash or a small scribble somewhere near the drawing."""
    c, s = rng.uniform(-1.2, 1.2, 2), rng.uniform(0.05, 0.3)
    n = (1, 2, 6)[rng.integers(3)]
    return [c + s * rng.normal(0, 1, (max(n, 2), 2)).cumsum(0) * (n > 1)]


# word -> (template, largest rotation in radians); orientation is part of e.g. a house
SHAPES: dict[str, tuple[Shape, float]] = {
    "arrow": (arrow, np.pi),
    "circle": (circle, np.pi),
    "cloud": (cloud, 0.15),
    "heart": (heart, 0.3),
    "house": (house, 0.12),
    "lightning": (lightning, 0.35),
    "moon": (moon, 0.8),
    "plus": (plus, 0.2),
    "spiral": (spiral, np.pi),
    "square": (square, 0.25),
    "star": (star, 0.3),
    "sun": (sun, np.pi),
    "triangle": (triangle, 0.3),
    "wave": (wave, 0.35),
    "zigzag": (zigzag, 0.35),
}
CLASSES: tuple[str, ...] = tuple(sorted(SHAPES))
