"""Stroke transforms on whole batches: training's random affine, mirror, dropout and jitter, and
the mirror image that test-time augmentation ([`quickdraw.inference.runner`][quickdraw.inference.runner]) averages with.

Working on strokes rather than pixels keeps lines crisp and equally thick after the transform,
and a batch costs a handful of numpy passes over its points, with no per-drawing Python.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quickdraw.core.errors import SettingError
from quickdraw.data.prefixes import ink_prefix, stroke_prefix
from quickdraw.data.strokes import StrokeBatch

PREFIX_BY = ("strokes", "ink")


@dataclass
class StrokeAugment:
    """One random transform per drawing; every strength at 0 gives the identity.

    The affine acts about each drawing's bounding-box centre, not the frame centre: simplified
    drawings are aligned to the top-left corner, so the frame centre is rarely their middle and
    scaling or rotating about it would also move them by a shape-dependent amount. This way
    `shift` alone decides where a drawing goes.
    """

    # Users draw the same object bigger or smaller; beyond ~15% full-frame drawings lose their ends.
    scale: tuple[float, float] = (0.85, 1.15)
    # Squat vs tall renditions: x/y ratio in [e^-0.1, e^0.1], about +/-10%.
    aspect: float = 0.1
    # Hand-held tilt; people draw roughly upright, so orientation stays a cue for the model.
    rotation: float = 12.0
    # Slanted, hasty drawings.
    shear: float = 0.15
    # +/-8% of the frame (~20 units): where on the canvas a drawing starts varies by user.
    shift: float = 0.08
    # Unfinished drawings: the game stops people as soon as it recognises them.
    stroke_dropout: float = 0.1
    # Share of drawings cut to a prefix ([`keep_prefixes`][quickdraw.data.augment.keep_prefixes]), to recognise drawings while they
    # grow (the early/* metrics, quickdraw.metrics.prefix). Off until measured (python -m
    # benchmarks.compare_models --variants base,prefix25,prefix50,prefix75).
    prefix: float = 0.0
    # strokes: the first k strokes, k uniform in 1..S-1; ink: the first 10-100% of the arc length.
    prefix_by: str = "strokes"
    # Hand tremor; 1 unit is a quarter pixel at 64 px, enough to break exact pixel patterns.
    jitter: float = 1.0
    # Share of drawings mirrored left-right ([`mirror`][quickdraw.data.augment.mirror]). Most classes have no handedness
    # (a cat faces either way), but some do (a clock's hands, a 7): off until measured (docs/results/toolbox.md).
    hflip: float = 0.0
    # Share of drawings augmented at all; the ranges above are mild and centred on the identity,
    # so the clean test distribution is already well covered at 1.
    p: float = 1.0

    def __post_init__(self) -> None:
        if self.prefix_by not in PREFIX_BY:
            raise SettingError(
                f"data.augment.prefix_by must be one of {', '.join(PREFIX_BY)}, got {self.prefix_by!r}"
            )

    def __call__(self, batch: StrokeBatch, rng: np.random.Generator) -> StrokeBatch:
        """A new batch with float32 points; the same rng state gives the same result."""
        n = len(batch)
        active = rng.random(n) < self.p if self.p < 1 else np.ones(n, bool)
        if self.prefix > 0:  # drawn only when on: prefix=0 keeps the random stream of earlier runs
            batch = keep_prefixes(
                batch, active & (rng.random(n) < self.prefix), self.prefix_by, rng
            )
        if self.stroke_dropout > 0:
            batch = drop_strokes(batch, self.stroke_dropout, active, rng)
        if self.hflip > 0:  # drawn only when on: hflip=0 keeps the random stream of earlier runs
            batch = mirror(batch, active & (rng.random(n) < self.hflip))
        points = batch.points.astype(np.float32)
        if self._has_affine():
            coef = np.repeat(self._affines(batch, points, active, rng), batch.num_points, axis=0)
            points = _linear(coef, points) + coef[:, 4:6]
        if self.jitter > 0:
            noise = rng.standard_normal(points.shape, dtype=np.float32) * np.float32(self.jitter)
            if self.p < 1:
                noise *= active[batch.point_drawing, None]
            points += noise
        return StrokeBatch(points, batch.stroke_offsets, batch.drawing_offsets, batch.times)

    def _has_affine(self) -> bool:
        return tuple(self.scale) != (1.0, 1.0) or any(
            (self.aspect, self.rotation, self.shear, self.shift)
        )

    def _affines(
        self, batch: StrokeBatch, points: np.ndarray, active: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """(B, 6) per-drawing affines as columns [m00, m10, m01, m11, tx, ty]."""
        n = len(batch)
        scale = rng.uniform(self.scale[0], self.scale[1], n)
        stretch = np.exp(rng.uniform(-self.aspect, self.aspect, n) / 2)
        angle = np.deg2rad(rng.uniform(-self.rotation, self.rotation, n))
        shear = rng.uniform(-self.shear, self.shear, n)
        shift = rng.uniform(-self.shift, self.shift, (n, 2)) * 255
        sx, sy = scale * stretch, scale / stretch
        cos, sin = np.cos(angle), np.sin(angle)
        # rotation @ shear @ diag(sx, sy)
        m = np.stack(
            [cos * sx, sin * sx, (cos * shear - sin) * sy, (sin * shear + cos) * sy], axis=1
        )
        m[~active] = (1, 0, 0, 1)
        shift[~active] = 0
        centre = bbox_centres(points, batch.stroke_offsets[batch.drawing_offsets])
        # p' = M (p - c) + c + t
        offset = centre + shift - _linear(m, centre)
        return np.concatenate([m, offset], axis=1).astype(np.float32)


def _linear(m: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Row-wise 2x2 maps, `m` holding columns [m00, m10, m01, m11], applied to (N, 2) `xy`."""
    return xy[:, :1] * m[:, 0:2] + xy[:, 1:] * m[:, 2:4]


def bbox_centres(points: np.ndarray, point_offsets: np.ndarray) -> np.ndarray:
    """(B, 2) bounding-box centre of each drawing; the frame centre for empty drawings."""
    counts = np.diff(point_offsets)
    centre = np.full((len(counts), 2), 127.5, np.float32)
    nonempty = counts > 0
    if nonempty.any():
        # reduceat over the non-empty starts only: each run then ends where the drawing does.
        starts = point_offsets[:-1][nonempty]
        lo = np.minimum.reduceat(points, starts, axis=0)
        hi = np.maximum.reduceat(points, starts, axis=0)
        centre[nonempty] = (lo + hi) / 2
    return centre


def mirror(batch: StrokeBatch, which: np.ndarray | None = None) -> StrokeBatch:
    """Left-right mirror images of the drawings `which` (a (B,) mask; all when None).

    The strokes are mirrored, not the pixels, so every raster encoding (stroke order, time) stays
    what it means. Each drawing is mirrored about its own bounding box, x -> x_min + x_max - x:
    Google's simplification aligns drawings to the left edge (x_min = 0) and scales the longer side
    to 255, so for the many drawings spanning the width this is x -> 255 - x, and for the others it
    keeps them left-aligned as every training drawing is, rather than pushing them to the right edge.
    Integer points stay integers (and in 0-255), so the dtype is kept.
    """
    if len(batch.points) == 0:
        return batch
    starts = batch.stroke_offsets[batch.drawing_offsets]
    centre_x = bbox_centres(batch.points.astype(np.float32), starts)[:, 0]
    per_point = np.repeat(2 * centre_x, batch.num_points)
    x = batch.points[:, 0].astype(np.float32)
    if which is not None:
        per_point = np.where(np.repeat(which, batch.num_points), per_point, 2 * x)
    points = batch.points.copy()
    points[:, 0] = (per_point - x).astype(points.dtype)
    return StrokeBatch(points, batch.stroke_offsets, batch.drawing_offsets, batch.times)


def keep_prefixes(
    batch: StrokeBatch, which: np.ndarray, by: str, rng: np.random.Generator
) -> StrokeBatch:
    """Drawings `which` (a (B,) mask) cut to a random proper prefix ([`quickdraw.data.prefixes`][quickdraw.data.prefixes]).

    `strokes`: the first k strokes, k uniform in 1..S-1 (a one-stroke drawing stays whole);
    `ink`: the first f of the arc length, f uniform in [0.1, 1) (the smallest prefix evaluation
    scores; below it a drawing is a dot). Never empties a drawing; times are cut along.
    """
    n = len(batch)
    if by == "strokes":
        s = batch.num_strokes
        k = np.where(which & (s > 1), rng.integers(1, np.maximum(s, 2)), s)
        return stroke_prefix(batch, np.arange(n), k)
    f = np.where(which, rng.uniform(0.1, 1.0, n), 1.0)
    return ink_prefix(batch, np.arange(n), f)


def drop_strokes(
    batch: StrokeBatch, prob: float, active: np.ndarray, rng: np.random.Generator
) -> StrokeBatch:
    """Drop each stroke of an active drawing with probability `prob`, never all of one drawing."""
    n = len(batch)
    stroke_drawing = np.repeat(np.arange(n), batch.num_strokes)
    keep = (rng.random(len(stroke_drawing)) >= prob) | ~active[stroke_drawing]
    # A drawing that would vanish keeps its first stroke: an empty image teaches nothing, and the
    # first stroke is what an interrupted player had drawn.
    vanished = (np.bincount(stroke_drawing[keep], minlength=n) == 0) & (batch.num_strokes > 0)
    keep[batch.drawing_offsets[:-1][vanished]] = True
    lengths = np.diff(batch.stroke_offsets)
    stroke_offsets = np.zeros(int(keep.sum()) + 1, np.int64)
    np.cumsum(lengths[keep], out=stroke_offsets[1:])
    drawing_offsets = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(stroke_drawing[keep], minlength=n), out=drawing_offsets[1:])
    kept = np.repeat(keep, lengths)
    times = None if batch.times is None else batch.times[kept]
    return StrokeBatch(batch.points[kept], stroke_offsets, drawing_offsets, times)
