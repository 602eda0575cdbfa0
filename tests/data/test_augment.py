"""Behaviour of the stroke augmentation: identity, determinism, dropout and affine bounds."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from itertools import islice

import numpy as np
import pytest

from quickdraw.data.augment import StrokeAugment, bbox_centres
from quickdraw.data.raster import RasterSpec
from quickdraw.data.strokes import StrokeBatch

OFF = {
    "scale": (1.0, 1.0),
    "aspect": 0.0,
    "rotation": 0.0,
    "shear": 0.0,
    "shift": 0.0,
    "stroke_dropout": 0.0,
    "jitter": 0.0,
}


def random_batch(n: int, strokes: int = 4, seed: int = 0) -> StrokeBatch:
    """n drawings of 1..strokes strokes of 2..6 random uint8 points, some drawings empty."""
    rng = np.random.default_rng(seed)
    drawings = []
    for i in range(n):
        k = 0 if i % 17 == 5 else int(rng.integers(1, strokes + 1))
        drawings.append([rng.integers(0, 256, (2, rng.integers(2, 7))).tolist() for _ in range(k)])
    b = StrokeBatch.from_drawings(drawings)
    return StrokeBatch(b.points.astype(np.uint8), b.stroke_offsets, b.drawing_offsets)


def assert_consistent(b: StrokeBatch) -> None:
    assert b.stroke_offsets[0] == 0 and b.stroke_offsets[-1] == len(b.points)
    assert b.drawing_offsets[0] == 0 and b.drawing_offsets[-1] == len(b.stroke_offsets) - 1
    assert np.all(np.diff(b.stroke_offsets) >= 0) and np.all(np.diff(b.drawing_offsets) >= 0)


def test_all_strengths_zero_is_identity() -> None:
    batch = random_batch(50)
    out = StrokeAugment(**OFF)(batch, np.random.default_rng(0))
    assert out.points.dtype == np.float32
    np.testing.assert_array_equal(out.points, batch.points.astype(np.float32))
    np.testing.assert_array_equal(out.stroke_offsets, batch.stroke_offsets)
    np.testing.assert_array_equal(out.drawing_offsets, batch.drawing_offsets)


def test_probability_zero_is_identity_and_half_touches_about_half() -> None:
    batch = random_batch(400)
    out = StrokeAugment(p=0.0)(batch, np.random.default_rng(0))
    np.testing.assert_array_equal(out.points, batch.points.astype(np.float32))
    out = StrokeAugment(p=0.5, stroke_dropout=0.0)(batch, np.random.default_rng(0))
    moved = np.zeros(len(batch), bool)
    np.logical_or.at(moved, batch.point_drawing, np.any(out.points != batch.points, axis=1))
    assert 0.4 < moved[batch.num_points > 0].mean() < 0.6


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_output_is_float32_and_consistent(dtype: type) -> None:
    batch = random_batch(100)
    batch = StrokeBatch(batch.points.astype(dtype), batch.stroke_offsets, batch.drawing_offsets)
    out = StrokeAugment()(batch, np.random.default_rng(1))
    assert out.points.dtype == np.float32 and len(out) == len(batch)
    assert_consistent(out)


def test_same_seed_same_result_other_seed_differs() -> None:
    batch, aug = random_batch(64), StrokeAugment()
    a, b = aug(batch, np.random.default_rng(7)), aug(batch, np.random.default_rng(7))
    np.testing.assert_array_equal(a.points, b.points)
    np.testing.assert_array_equal(a.stroke_offsets, b.stroke_offsets)
    c = aug(batch, np.random.default_rng(8))
    assert len(c.points) != len(a.points) or not np.array_equal(a.points, c.points)


def test_dropout_never_empties_a_drawing_and_keeps_whole_strokes() -> None:
    batch = random_batch(500, strokes=3)
    out = StrokeAugment(**{**OFF, "stroke_dropout": 0.9})(batch, np.random.default_rng(0))
    assert_consistent(out)
    assert np.all(out.num_strokes[batch.num_strokes > 0] >= 1)
    assert np.all(out.num_strokes[batch.num_strokes == 0] == 0)
    assert out.num_strokes.sum() < 0.6 * batch.num_strokes.sum()
    for i in range(0, len(batch), 23):
        original = {tuple(map(tuple, s.astype(np.float32))) for s in batch.drawing(i)}
        kept = [tuple(map(tuple, s)) for s in out.drawing(i)]
        assert set(kept) <= original and len(kept) == len(set(kept))


def test_full_dropout_leaves_the_first_stroke() -> None:
    batch = random_batch(100)
    out = StrokeAugment(**{**OFF, "stroke_dropout": 1.0})(batch, np.random.default_rng(0))
    for i in range(len(batch)):
        strokes = batch.drawing(i)[:1]
        assert [s.tolist() for s in out.drawing(i)] == [
            s.astype(np.float32).tolist() for s in strokes
        ]


def test_dropout_rate_matches_probability() -> None:
    # Ten strokes per drawing: losing them all (p^10) is negligible, so the rate is p.
    drawings = [[[[i, i + 1], [s, s]] for s in range(10)] for i in range(2000)]
    batch = StrokeBatch.from_drawings(drawings)
    out = StrokeAugment(**{**OFF, "stroke_dropout": 0.3})(batch, np.random.default_rng(0))
    assert abs(1 - out.num_strokes.sum() / batch.num_strokes.sum() - 0.3) < 0.015


def test_affine_keeps_centre_within_shift_bounds() -> None:
    # Centrally symmetric boxes keep their bbox centre under any linear map about it, so only
    # the shift may move it.
    rng = np.random.default_rng(0)
    lo = rng.uniform(20, 120, (1000, 2))
    hi = lo + rng.uniform(20, 120, (1000, 2))
    boxes = [
        [[[x0, x1, x1, x0, x0], [y0, y0, y1, y1, y0]]]
        for (x0, y0), (x1, y1) in zip(lo, hi, strict=True)
    ]
    batch = StrokeBatch.from_drawings(boxes)
    aug = StrokeAugment(stroke_dropout=0.0, jitter=0.0)
    out = aug(batch, np.random.default_rng(1))
    moved = bbox_centres(out.points, out.stroke_offsets[out.drawing_offsets]) - (lo + hi) / 2
    bound = aug.shift * 255
    assert np.abs(moved).max() <= bound + 1e-3
    assert np.abs(moved).max() > 0.9 * bound
    size = np.ptp(out.points.reshape(-1, 5, 2), axis=1) / (hi - lo)
    assert size.min() < 0.95 and size.max() > 1.05


def test_scale_only_stays_in_range() -> None:
    square = [[[[50, 150, 150, 50, 50], [50, 50, 150, 150, 50]]]] * 500
    batch = StrokeBatch.from_drawings(square)
    out = StrokeAugment(**{**OFF, "scale": (0.8, 1.2)})(batch, np.random.default_rng(0))
    side = np.ptp(out.points.reshape(-1, 5, 2), axis=1) / 100
    assert np.allclose(side[:, 0], side[:, 1], atol=1e-5)
    assert 0.8 - 1e-5 <= side.min() < 0.85 and 1.15 < side.max() <= 1.2 + 1e-5


def test_aspect_only_stretches_within_range() -> None:
    square = [[[[50, 150, 150, 50, 50], [50, 50, 150, 150, 50]]]] * 500
    batch = StrokeBatch.from_drawings(square)
    out = StrokeAugment(**{**OFF, "aspect": 0.2})(batch, np.random.default_rng(0))
    side = np.ptp(out.points.reshape(-1, 5, 2), axis=1) / 100
    ratio = np.log(side[:, 0] / side[:, 1])
    assert np.abs(ratio).max() <= 0.2 + 1e-5 and np.abs(ratio).max() > 0.18
    assert np.allclose(side.prod(axis=1), 1, atol=1e-5)  # area kept: stretch is not scale


def test_jitter_alone_moves_points_by_sigma() -> None:
    batch = random_batch(300)
    out = StrokeAugment(**{**OFF, "jitter": 2.0})(batch, np.random.default_rng(0))
    np.testing.assert_array_equal(out.stroke_offsets, batch.stroke_offsets)
    delta = out.points - batch.points
    assert abs(delta.std() - 2.0) < 0.1 and abs(delta.mean()) < 0.1


def test_real_drawings_survive(sample_drawings: list) -> None:
    batch = StrokeBatch.from_drawings(sample_drawings)
    aug, spec = StrokeAugment(), RasterSpec()
    for seed in range(3):
        out = aug(batch, np.random.default_rng(seed))
        assert np.isfinite(out.points).all() and np.all(out.num_strokes >= 1)
        ink = spec(out).reshape(len(out), -1).astype(np.int64).sum(axis=1)
        clean = spec(batch).reshape(len(batch), -1).astype(np.int64).sum(axis=1)
        # Most of the drawing stays on the canvas: dropout and cropping only trim it.
        assert np.all(ink > 0) and np.median(ink / clean) > 0.7


@pytest.fixture(scope="module")
def sample_drawings(sample_dir) -> list:
    """Real drawings from the shared sample, or a skip when it is absent."""
    drawings = []
    with zipfile.ZipFile(sample_dir / "train_simplified.zip") as zf:
        for name in zf.namelist()[::20]:
            with zf.open(name) as f:
                rows = csv.DictReader(io.TextIOWrapper(f, encoding="utf-8"))
                drawings += [json.loads(row["drawing"]) for row in islice(rows, 20)]
    return drawings
