"""The store's stroke encoding (schema version 2): `StrokeBatch.to_arrow` and `from_arrow` round-trip exactly."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quickdraw.data.convert_file import ConvertSettings
from quickdraw.data.schema import SCHEMA, WRITE_OPTIONS
from quickdraw.data.strokes import StrokeBatch

# Coordinates biased towards the extremes, where uint8 deltas wrap around.
coord = st.one_of(st.sampled_from([0, 1, 127, 128, 254, 255]), st.integers(0, 255))


@st.composite
def stroke(draw) -> list[list[int]]:
    n = draw(st.one_of(st.just(1), st.integers(1, 40)))  # single-point strokes are common
    return [draw(st.lists(coord, min_size=n, max_size=n)) for _ in range(2)]


drawing = st.lists(stroke(), min_size=0, max_size=30)  # none to many strokes
batches = st.lists(drawing, min_size=0, max_size=12)


def assert_same(a: StrokeBatch, b: StrokeBatch) -> None:
    assert a.points.dtype == np.uint8 and a.points.shape == (len(b.points), 2)
    np.testing.assert_array_equal(a.points, b.points.astype(np.uint8))
    np.testing.assert_array_equal(a.stroke_offsets, b.stroke_offsets)
    np.testing.assert_array_equal(a.drawing_offsets, b.drawing_offsets)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches)
def test_round_trip_is_exact(drawings):
    batch = StrokeBatch.from_drawings(drawings)
    points, lengths = batch.to_arrow()
    assert points.type == SCHEMA.field("points").type
    assert lengths.type == SCHEMA.field("stroke_lengths").type
    assert_same(StrokeBatch.from_arrow(points, lengths), batch)
    assert StrokeBatch.from_arrow(points, lengths).to_drawings() == drawings


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches, st.data())
def test_rows_taken_sliced_or_chunked_decode_alone(drawings, data):
    """Each drawing decodes on its own: as the store reads it, any rows in any order."""
    batch = StrokeBatch.from_drawings(drawings)
    table = pa.table(dict(zip(("points", "stroke_lengths"), batch.to_arrow(), strict=True)))
    n = len(batch)
    index = data.draw(st.lists(st.integers(0, max(n - 1, 0)), max_size=20 if n else 0))
    taken = table.take(pa.array(index, pa.int64()))
    assert_same(
        StrokeBatch.from_arrow(taken["points"], taken["stroke_lengths"]), batch.select(index)
    )
    start = data.draw(st.integers(0, n))
    stop = data.draw(st.integers(start, n))
    part = table.slice(start, stop - start)
    expected = batch.select(np.arange(start, stop))
    assert_same(StrokeBatch.from_arrow(part["points"], part["stroke_lengths"]), expected)
    chunked = pa.concat_tables([table.slice(0, start), table.slice(start)])
    assert_same(StrokeBatch.from_arrow(chunked["points"], chunked["stroke_lengths"]), batch)


def test_extremes_and_a_subset_of_a_batch_encode_like_a_fresh_batch():
    drawings = [
        [[[255], [0]]],
        [[[0, 255, 0, 255], [255, 0, 255, 0]], [[128], [128]]],
        [],
        [[[7, 7], [9, 9]]] * 50,
    ]
    batch = StrokeBatch.from_drawings(drawings)
    points, lengths = batch.to_arrow()
    # The first point is stored as is; later ones as deltas modulo 256.
    assert points[1].as_py() == bytes([0, 255, 255, 1, 1, 255, 255, 1, 129, 128])
    assert lengths.to_pylist() == [[1], [4, 1], [], [2] * 50]
    sub = batch.select(np.array([3, 1]))
    assert sub.to_arrow()[0].to_pylist() == [points[3].as_py(), points[1].as_py()]
    assert_same(StrokeBatch.from_arrow(*sub.to_arrow()), sub)


def test_round_trip_through_a_parquet_file(tmp_path):
    rng = np.random.default_rng(0)
    drawings = [
        [
            [rng.integers(0, 256, n).tolist(), rng.integers(0, 256, n).tolist()]
            for n in rng.integers(1, 60, rng.integers(1, 9))
        ]
        for _ in range(300)
    ]
    batch = StrokeBatch.from_drawings(drawings)
    points, lengths = batch.to_arrow()
    n = len(batch)
    table = pa.Table.from_arrays(
        [
            pa.array(np.arange(n), pa.int64()),
            pa.array(np.zeros(n, np.int16)),
            points,
            lengths,
            pa.array(["US"] * n),
            pa.array([True] * n),
            pa.array([None] * n, pa.timestamp("us", tz="UTC")),
        ],
        schema=SCHEMA,
    )
    with pq.ParquetWriter(tmp_path / "s.parquet", SCHEMA, **WRITE_OPTIONS) as w:
        w.write_table(table, row_group_size=128)
    back = pq.read_table(tmp_path / "s.parquet", columns=["points", "stroke_lengths"])
    assert_same(StrokeBatch.from_arrow(back["points"], back["stroke_lengths"]), batch)


def test_strokes_longer_than_uint16_are_refused():
    points = np.zeros((70_000, 2), np.uint8)
    batch = StrokeBatch(points, np.array([0, 70_000]), np.array([0, 1]))
    with pytest.raises(ValueError, match="65,535"):
        batch.to_arrow()
    with pytest.raises(ValueError, match="max_points"):
        ConvertSettings(max_points=70_000)


@pytest.mark.parametrize("damage", ["odd_bytes", "lengths_do_not_add_up", "row_counts"])
def test_inconsistent_columns_are_an_error(damage):
    points, lengths = StrokeBatch.from_drawings([[[[1, 2], [3, 4]]], [[[5], [6]]]]).to_arrow()
    if damage == "odd_bytes":
        points = pa.array([b"\x01\x03\x01", b"\x05\x06"], pa.binary())
    elif damage == "lengths_do_not_add_up":
        lengths = pa.array([[2], [2]], pa.list_(pa.uint16()))
    else:
        lengths = lengths.slice(0, 1)
    with pytest.raises(ValueError):
        StrokeBatch.from_arrow(points, lengths)
