"""Per-point times (ms) where the source has them: simplification, the store (schema version 3),
the input readers of evaluate/predict, and the temporal encoding's `time_source=ms`."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from lightning.fabric.utilities.data import AttributeDict

from quickdraw.data.conversion import convert
from quickdraw.data.convert_file import ConvertSettings
from quickdraw.data.input_files import InputStats, iter_input
from quickdraw.data.parsing import parse_timed_drawing
from quickdraw.data.raster import MissingTimes, RasterSpec
from quickdraw.data.schema import SCHEMA
from quickdraw.data.store import Store, StoreError
from quickdraw.data.strokes import StrokeBatch
from quickdraw.serving.guesser import Guesser, InputRejected
from tests.helpers.drawings import kaggle_row, raw_ndjson, write_csv
from tests.helpers.paths import SAMPLE

# An L drawn in 900 ms, then (after a 2 s pause) a short tick: every kept point is a raw point.
L_SHAPE = [[[0, 50, 100, 100], [0, 0, 0, 100], [0, 200, 500, 900]], [[40, 60], [40, 60], [2900, 3000]]]  # fmt: skip


def test_simplification_gives_each_kept_point_its_raw_time():
    points, lengths, times = parse_timed_drawing(L_SHAPE)
    assert lengths == [3, 2]
    assert points[:3].tolist() == [[0, 0], [255, 0], [255, 255]]
    assert times.tolist() == [0, 500, 900, 2900, 3000]
    assert parse_timed_drawing([s[:2] for s in L_SHAPE])[2] is None  # simplified: no times


def test_times_round_trip_through_the_store(tmp_path):
    src = raw_ndjson(tmp_path / "raw" / "cat.ndjson")
    convert(tmp_path / "raw", tmp_path / "store", ConvertSettings(val_fraction=0, test_fraction=0), workers=1, progress=False)  # fmt: skip
    rows = Store(tmp_path / "store")["train"].gather(np.arange(12))
    lines = [json.loads(line) for line in src.read_text().splitlines()]
    expected = {int(o["key_id"]): parse_timed_drawing(o["drawing"]) for o in lines}
    for i, key in enumerate(rows.key_ids.tolist()):
        one = rows.strokes.select(np.array([i]))
        np.testing.assert_array_equal(one.points, expected[key][0])
        np.testing.assert_array_equal(one.times, np.rint(expected[key][2]))  # whole ms
    assert rows.strokes.times is not None and (np.diff(rows.strokes.times) != 0).any()


def test_simplified_sources_write_version_2_shards_and_old_stores_stay_readable(tmp_path):
    write_csv(tmp_path / "src" / "cat.csv", [kaggle_row(k, "cat") for k in range(1, 30)])
    convert(tmp_path / "src", tmp_path / "store", workers=1, progress=False)
    for shard in (tmp_path / "store").rglob("*.parquet"):
        assert pq.read_schema(shard).remove_metadata().equals(SCHEMA)  # no times column
    manifest = tmp_path / "store" / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "schema_version": 2}))
    store = Store(tmp_path / "store")  # a version 2 store: read, without times
    assert store["train"].gather(np.arange(3)).strokes.times is None
    with pytest.raises(StoreError, match="time_source=ms.*python -m quickdraw.convert"):
        store.require_times()
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "schema_version": 1}))
    with pytest.raises(StoreError, match="schema_version 1.*reads 2 and 3.*store=NEW_DIR"):
        Store(tmp_path / "store")


def test_raw_ndjson_and_raw_csv_inputs_give_evaluate_their_times(tmp_path):
    raw_ndjson(tmp_path / "cat.ndjson", n=3)
    drawing = json.dumps(L_SHAPE)
    write_csv(tmp_path / "test_raw.csv", [[7, "US", drawing], [8, "DE", drawing]], header=["key_id", "countrycode", "drawing"])  # fmt: skip
    for name, n in (("cat.ndjson", 3), ("test_raw.csv", 2)):
        batch = next(iter_input(tmp_path / name, 16, InputStats()))
        assert len(batch.strokes) == n and batch.strokes.times is not None
        assert len(batch.strokes.times) == len(batch.strokes.points)
    assert batch.strokes.times.tolist() == [0, 500, 900, 2900, 3000] * 2


def test_the_real_raw_test_file_has_times():
    path = SAMPLE / "test_raw.csv"
    if not path.is_file():
        pytest.skip(f"real raw sample not found at {path}")
    batch = next(iter_input(path, 64, InputStats()))
    times = batch.strokes.times
    assert times is not None and len(times) == len(batch.strokes.points)
    starts = batch.strokes.stroke_offsets[batch.strokes.drawing_offsets[:-1]]
    assert (times[starts] == 0).all() and times.max() > 1000  # ms since each drawing's first point


def test_temporal_with_real_time_shows_a_pause_that_point_order_hides():
    timed = StrokeBatch.from_parsed([parse_timed_drawing(L_SHAPE)])
    order, ms = (RasterSpec(size=32, encoding="temporal", time_source=s) for s in ("order", "ms"))
    a, b = order(timed), ms(timed)
    np.testing.assert_array_equal(a[:, :2], b[:, :2])  # ink and stroke order: the same
    assert not np.array_equal(a[:, 2], b[:, 2])
    # The tick after the 2 s pause is drawn late in real time: darker (the ramp ends at 80).
    assert b[0, 2][b[0, 2] > 0].min() < a[0, 2][a[0, 2] > 0].min()
    untimed = StrokeBatch.from_parsed([parse_timed_drawing(L_SHAPE)[:2]])
    with pytest.raises(MissingTimes, match="time_source=ms.*raw drawings"):
        ms(untimed)


def test_long_pauses_and_clock_jumps_back_survive_the_times_column():
    drawings = [
        [[[1, 2, 3], [4, 5, 6], [0, 70_000, 69_990]]],  # a 70 s pause, then a clock jumping back
        [[[9], [1], [0]]],
        [[[5, 6], [5, 6], [0, 2**33]]],  # more than 32 bits of ms
    ]
    batch = StrokeBatch.from_drawings(drawings)
    points, lengths = batch.to_arrow()
    column = batch.times_to_arrow()
    assert len(column[0].as_py()) == 1 + 3 + 1  # varints: small steps one byte, the pause three
    back = StrokeBatch.from_arrow(points, lengths, column)
    np.testing.assert_array_equal(back.times, batch.times)
    with pytest.raises(ValueError, match="one value per point"):
        StrokeBatch.from_arrow(points.slice(0, 2), lengths.slice(0, 2), column.slice(1, 2))


class _TimeModel(torch.nn.Module):
    """Stands in for a checkpoint trained with time_source=ms: the demo must feed it real times."""

    def __init__(self):
        super().__init__()
        spec = RasterSpec(size=32, encoding="temporal", time_source="ms")
        self.hparams = AttributeDict(raster=asdict(spec), classes=["a", "b"])  # as Lightning's
        self.device = torch.device("cpu")

    def predict_proba(self, images: torch.Tensor) -> torch.Tensor:
        return torch.full((len(images), 2), 0.5)


def test_the_demo_feeds_a_time_trained_model_the_sketchpads_times():
    guesser = Guesser(_TimeModel())
    guess = guesser.guess_strokes(json.dumps(L_SHAPE))  # what the sketchpad sends
    timed = StrokeBatch.from_parsed([parse_timed_drawing(L_SHAPE)])
    np.testing.assert_array_equal(guess.image, RasterSpec(**guesser.model.hparams.raster)(timed)[0])
    with pytest.raises(InputRejected, match=r"\[xs, ys, ts\]"):  # refused, not guessed at
        guesser.guess_strokes(json.dumps([s[:2] for s in L_SHAPE]))
