"""Drawings made stroke by stroke, for the browser tests of the page and the demo: candidate
drawings (fractions of the canvas) whose top guess changes as strokes are added, and the drawing
a page recorded checked against the demo's own rule (quickdraw.serving.guessing)."""

from __future__ import annotations

import math

from quickdraw.serving.guesser import Guesser
from quickdraw.serving.guessing import GuessHistory, announcement

Stroke = list[tuple[float, float]]


def line(a: tuple[float, float], b: tuple[float, float], n: int = 8) -> Stroke:
    return [(a[0] + (b[0] - a[0]) * i / n, a[1] + (b[1] - a[1]) * i / n) for i in range(n + 1)]


def ring(r: float = 0.3, n: int = 36) -> Stroke:
    return [(0.5 + r * math.cos(2 * math.pi * i / n), 0.5 + r * math.sin(2 * math.pi * i / n))
            for i in range(n + 1)]  # fmt: skip


ZIGZAG = [p for a, b in zip([(0.1, 0.5), (0.3, 0.2), (0.5, 0.8), (0.7, 0.2)],
                            [(0.3, 0.2), (0.5, 0.8), (0.7, 0.2), (0.9, 0.8)], strict=True)
          for p in line(a, b)]  # fmt: skip
BOX = [line((0.15, 0.15), (0.85, 0.15)), line((0.85, 0.15), (0.85, 0.85)),
       line((0.85, 0.85), (0.15, 0.85)), line((0.15, 0.85), (0.15, 0.15))]  # fmt: skip
# Shapes of the demo's classes (tests/helpers/drawings.py DEMO_CLASSES) drawn over each other.
CANDIDATES: list[list[Stroke]] = [
    [ring(), *BOX],
    [*BOX[:3], ZIGZAG],
    [ZIGZAG, ring()],
    [line((0.2, 0.8), (0.5, 0.2)), line((0.5, 0.2), (0.8, 0.8)), line((0.8, 0.8), (0.2, 0.8)), ring(0.2)],
]  # fmt: skip


def raw(strokes: list[Stroke], width: float, height: float) -> list:
    """Strokes as the sketchpad records them: canvas px (0.1 px steps) and ms."""
    return [[[round(u * width, 1) for u, _ in s], [round(v * height, 1) for _, v in s],
             [1000 * k + 10 * i for i in range(len(s))]] for k, s in enumerate(strokes)]  # fmt: skip


def top_words(guesser: Guesser, drawing: list) -> list[tuple[str, float]]:
    return guesser.top_of_prefixes(drawing, list(range(1, len(drawing) + 1)))


def changing_drawing(guesser: Guesser, width: float, height: float) -> tuple[list[Stroke], float]:
    """The first candidate whose top guess changes from one stroke to a later one, and a
    threshold that accepts every step of it (so the announcement must follow the change)."""
    for strokes in CANDIDATES:
        steps = top_words(guesser, raw(strokes, width, height))
        if len({w for w, _ in steps}) > 1:
            return strokes, max(0.0, min(p for _, p in steps) - 0.1)
    raise AssertionError(f"no candidate drawing changes its top guess: {CANDIDATES}")


def said_after_each_stroke(guesser: Guesser, drawing: list, threshold: float) -> list[str]:
    """The demo's announcement after each stroke of `drawing` (Python's rule, the reference)."""
    h, out = GuessHistory(threshold), []
    for k in range(1, len(drawing) + 1):
        h.update(drawing[:k], lambda counts, d=drawing[:k]: guesser.top_of_prefixes(d, counts))
        out.append(announcement(h.announced_step.word) if h.announced_step else "")
    return out
