"""The converter: every row accounted for, deterministic splits, resumable, clear errors."""

from __future__ import annotations

import gzip
import json
import os
import random
import zipfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from quickdraw.data import conversion as convert_mod
from quickdraw.data.conversion import convert
from quickdraw.data.convert_file import ConvertSettings
from quickdraw.data.formats.base import QuickDrawFormatError
from quickdraw.data.schema import SPLITS, Manifest
from quickdraw.data.simplify import simplify_drawing
from quickdraw.data.strokes import StrokeBatch
from tests.helpers.drawings import LINE, SQUARE, kaggle_row, write_csv


def store_keys(store: Path) -> dict[str, set[int]]:
    m = Manifest.load(store)
    return {
        s: {
            k
            for p in m.shards[s]
            for k in pq.read_table(store / p, columns=["key_id"])["key_id"].to_pylist()
        }
        for s in SPLITS
    }


def simple_source(tmp_path: Path, words=("cat", "dog"), n=60, start=1000) -> Path:
    src = tmp_path / "src"
    for w_i, word in enumerate(words):
        rows = [
            kaggle_row(start + 1000 * w_i + i, word, SQUARE if i % 2 else LINE) for i in range(n)
        ]
        write_csv(src / f"{word}.csv.gz", rows)
    return src


def test_real_sample_zip_every_row_accounted_for(sample_dir, tmp_path):
    m = convert(sample_dir / "train_simplified.zip", tmp_path / "qd", progress=False)
    assert len(m.classes) == 344 and m.classes == sorted(m.classes)
    assert sum(m.rows.values()) == 6880 and not m.bad_rows
    assert sum(s["rows_read"] for s in m.sources) == 6880
    assert all(sum(m.counts[s][c] for s in SPLITS) == 20 for c in range(344))
    assert sum(len(v) for v in store_keys(tmp_path / "qd").values()) == 6880


def test_real_ndjson(sample_dir, tmp_path):
    m = convert(sample_dir / "ndjson" / "monkey.ndjson", tmp_path / "qd", progress=False)
    assert m.classes == ["monkey"] and sum(m.rows.values()) == 1000


def test_bad_rows_counted_by_reason_and_good_rows_kept(tmp_path):
    good = [kaggle_row(i, "cat") for i in range(1, 21)]
    bad = [
        kaggle_row(101, "cat", "[[[1, 2], [3, 4]]"),  # bad_json
        kaggle_row(102, "cat", "[]"),  # empty_drawing
        kaggle_row(103, "cat", [[[1, 2, 3], [4, 5]]]),  # length_mismatch
        kaggle_row(104, "cat", [[[1, 300], [4, 5]]]),  # out_of_range
        kaggle_row(105, "cat", [[[1, 2.5], [4, 5]]]),  # not_integer
        kaggle_row(106, ""),  # missing_word
        kaggle_row(107, "unicorn"),  # unknown_word
        kaggle_row("12ab", "cat"),  # bad_key_id
        ["US", "[[[1],[2]]]", "108"],  # wrong_column_count
        kaggle_row(109, "cat", "[[[1, 2], [3, 4]], 7]"),  # bad_structure
    ]
    rows = good[:10] + bad + good[10:]
    write_csv(tmp_path / "src" / "cat.csv", rows)
    m = convert(tmp_path / "src", tmp_path / "qd", progress=False)
    assert m.bad_rows == {
        "bad_json": 1,
        "bad_key_id": 1,
        "bad_structure": 1,
        "empty_drawing": 1,
        "length_mismatch": 1,
        "missing_word": 1,
        "not_integer": 1,
        "out_of_range": 1,
        "unknown_word": 1,
        "wrong_column_count": 1,
    }
    kept = set().union(*store_keys(tmp_path / "qd").values())
    assert kept == set(range(1, 21))
    lines = {e["reason"]: e["line"] for e in m.bad_examples}
    assert lines["bad_json"] == 12 and lines["wrong_column_count"] == 20  # header is line 1
    assert all(e["file"].endswith("cat.csv") for e in m.bad_examples)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("cat.csv", "a,b,c\n1,2,3\n", "not a Quick, Draw! CSV"),
        ("cat.csv.gz", "countrycode,drawing,key_id,recognized,timestamp,word\n", "not gzip"),
        ("data.zip", "this is not a zip", "not a valid zip"),
        ("cat.ndjson", "hello\n", "not JSON"),
    ],
)
def test_file_that_is_not_quickdraw_stops_with_its_name(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(QuickDrawFormatError, match=message) as err:
        convert(path, tmp_path / "qd", ConvertSettings(classes=["cat"]), progress=False)
    assert name in str(err.value)


def test_split_is_deterministic_and_independent_of_input_order(tmp_path):
    rows = [kaggle_row(k, "cat") for k in range(5000, 7000)]
    write_csv(tmp_path / "a" / "cat.csv", rows)
    write_csv(tmp_path / "b" / "cat.csv", random.Random(1).sample(rows, len(rows)))
    settings = dict(val_fraction=0.1, test_fraction=0.2)
    convert(tmp_path / "a", tmp_path / "qa", ConvertSettings(**settings), progress=False)
    convert(tmp_path / "b", tmp_path / "qb", ConvertSettings(**settings), progress=False)
    a, b = store_keys(tmp_path / "qa"), store_keys(tmp_path / "qb")
    assert a == b
    assert abs(len(a["val"]) / 2000 - 0.1) < 0.03 and abs(len(a["test"]) / 2000 - 0.2) < 0.03


def test_row_groups_are_class_pure_and_bounded(tmp_path):
    src = tmp_path / "mixed.csv"
    rows = [kaggle_row(k, ["cat", "dog", "eel"][k % 3]) for k in range(1, 3001)]
    write_csv(src, rows)
    m = convert(
        src,
        tmp_path / "qd",
        ConvertSettings(row_group_size=100, classes=["cat", "dog", "eel"]),
        progress=False,
    )
    for path in m.shards["train"]:
        f = pq.ParquetFile(tmp_path / "qd" / path)
        for g in range(f.num_row_groups):
            labels = f.read_row_group(g, columns=["label"])["label"].to_numpy()
            assert len(set(labels)) == 1 and len(labels) <= 100


def test_classes_inferred_by_scanning_when_file_name_is_not_a_word(tmp_path):
    write_csv(
        tmp_path / "all.csv", [kaggle_row(k, w) for k, w in enumerate(["b", "a", "c", "a"], 1)]
    )
    m = convert(tmp_path / "all.csv", tmp_path / "qd", progress=False)
    assert m.classes == ["a", "b", "c"] and sum(m.rows.values()) == 4


def test_raw_ndjson_is_simplified_like_google(tmp_path):
    rng = np.random.default_rng(0)
    drawings = []
    with open(tmp_path / "cat.ndjson", "w") as f:
        for k in range(20):
            strokes = [np.cumsum(rng.normal(0, 5, (30, 2)), axis=0) + 300 for _ in range(3)]
            raw = [[s[:, 0].tolist(), s[:, 1].tolist(), list(range(0, 300, 10))] for s in strokes]
            drawings.append(strokes)
            f.write(
                json.dumps(
                    {
                        "word": "cat",
                        "key_id": str(k + 1),
                        "countrycode": "NA",
                        "recognized": True,
                        "timestamp": "2017-03-16 22:31:06.84049 UTC",
                        "drawing": raw,
                    }
                )
                + "\n"
            )
    store = tmp_path / "qd"
    m = convert(
        tmp_path / "cat.ndjson",
        store,
        ConvertSettings(val_fraction=0, test_fraction=0),
        progress=False,
    )
    table = pq.read_table(store / m.shards["train"][0]).sort_by("key_id")
    batch = StrokeBatch.from_arrow(table["points"], table["stroke_lengths"])
    for k, row in enumerate(table.to_pylist()):
        expected = simplify_drawing(drawings[k])
        assert [s.tolist() for s in batch.drawing(k)] == [s.tolist() for s in expected]
        assert row["countrycode"] == "NA" and row["timestamp"].year == 2017


def test_recognized_only_and_max_per_class(tmp_path):
    rows = [kaggle_row(k, "cat", recognized="True" if k % 2 else "False") for k in range(1, 101)]
    write_csv(tmp_path / "cat.csv", rows)
    m = convert(
        tmp_path / "cat.csv", tmp_path / "q1", ConvertSettings(recognized_only=True), progress=False
    )
    assert sum(m.rows.values()) == 50 and m.filtered == {"not_recognized": 50}
    m = convert(
        tmp_path / "cat.csv", tmp_path / "q2", ConvertSettings(max_per_class=30), progress=False
    )
    assert sum(m.rows.values()) == 30 and m.filtered == {"over_max_per_class": 70}


def test_parallel_equals_serial(tmp_path):
    src = simple_source(tmp_path, words=("a", "b", "c", "d"), n=200)
    serial = convert(src, tmp_path / "q1", workers=1, progress=False)
    parallel = convert(src, tmp_path / "q2", workers=2, progress=False)
    assert serial.counts == parallel.counts
    assert store_keys(tmp_path / "q1") == store_keys(tmp_path / "q2")


def test_interrupted_run_resumes_without_loss_or_duplicates(tmp_path, monkeypatch):
    src = simple_source(tmp_path, words=("a", "b", "c", "d"), n=300)
    reference = (
        store_keys(tmp_path / "ref") if convert(src, tmp_path / "ref", progress=False) else None
    )
    real = convert_mod.convert_source
    calls = []

    def dies_on_third_file(source, store, *args, **kwargs):
        calls.append(source.name)
        if len(calls) == 3:
            # Leave a half-written shard behind, as a killed process would.
            (store / "train" / f".{source.id}-0000.parquet.tmp").write_bytes(b"PAR1 half")
            (store / "train" / f"{source.id}-0000.parquet").write_bytes(b"stray final-named shard")
            raise KeyboardInterrupt
        return real(source, store, *args, **kwargs)

    monkeypatch.setattr(convert_mod, "convert_source", dies_on_third_file)
    with pytest.raises(KeyboardInterrupt):
        convert(src, tmp_path / "qd", workers=1, progress=False)
    assert not (tmp_path / "qd" / "manifest.json").exists()
    monkeypatch.setattr(convert_mod, "convert_source", real)
    convert(src, tmp_path / "qd", workers=1, progress=False)
    keys = store_keys(tmp_path / "qd")
    assert keys == reference
    m = Manifest.load(tmp_path / "qd")
    assert sum(m.rows.values()) == sum(len(v) for v in keys.values()) == 1200
    assert not list((tmp_path / "qd").rglob("*.tmp"))
    # A finished store is left alone.
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "qd").rglob("*") if p.is_file()}
    monkeypatch.setattr(
        convert_mod, "convert_source", lambda *a, **k: pytest.fail("reconverted a finished store")
    )
    convert(src, tmp_path / "qd", workers=1, progress=False)
    assert before == {p: p.stat().st_mtime_ns for p in (tmp_path / "qd").rglob("*") if p.is_file()}


def test_other_settings_on_an_existing_store_are_refused(tmp_path):
    src = simple_source(tmp_path)
    convert(src, tmp_path / "qd", progress=False)
    with pytest.raises(ValueError, match="other settings.*val_fraction"):
        convert(src, tmp_path / "qd", ConvertSettings(val_fraction=0.2), progress=False)
    m = convert(
        src, tmp_path / "qd", ConvertSettings(val_fraction=0.2), overwrite=True, progress=False
    )
    assert m.settings["val_fraction"] == 0.2


def test_verify_rebuilds_only_damaged_files(tmp_path):
    src = simple_source(tmp_path, words=("a", "b"), n=200)
    store = tmp_path / "qd"
    m = convert(src, store, progress=False)
    reference = store_keys(store)
    victim = store / m.shards["train"][0]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    untouched = store / m.shards["train"][1]
    mtime = untouched.stat().st_mtime_ns
    convert(src, store, verify=True, progress=False)
    assert store_keys(store) == reference
    assert untouched.stat().st_mtime_ns == mtime


def test_zip_members_read_in_place_and_path_names_cannot_escape(tmp_path):
    archive = tmp_path / "train_simplified.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i, word in enumerate(("../../etc", "cat")):  # own key_ids: one key_id, one word
            body = "countrycode,drawing,key_id,recognized,timestamp,word\n" + "".join(
                f'US,"{json.dumps(SQUARE)}",{k},True,2017-01-01 00:00:00,{word}\n'
                for k in range(10 * i + 1, 10 * i + 11)
            )
            zf.writestr(f"{word}.csv", body)
    store = tmp_path / "out" / "qd"
    m = convert(archive, store, progress=False)
    assert m.classes == ["../../etc", "cat"] and sum(m.rows.values()) == 20
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert all(p == archive or store in p.parents for p in written)


def test_decompression_bomb_is_stopped(tmp_path):
    path = tmp_path / "cat.csv.gz"
    with gzip.open(path, "wt") as f:
        f.write("countrycode,drawing,key_id,recognized,timestamp,word\n")
        f.write(f'US,"{json.dumps(SQUARE)}",1,True,2017-01-01 00:00:00,cat\n' * 20000)
    assert os.path.getsize(path) < 100_000
    with pytest.raises(QuickDrawFormatError, match="max_bytes"):
        convert(
            path,
            tmp_path / "qd",
            ConvertSettings(max_bytes=200_000, classes=["cat"]),
            progress=False,
        )
