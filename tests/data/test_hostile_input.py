"""Hostile and malformed input: the readers never crash, count every bad row by reason and keep every good row.

Property-based (hypothesis): each generated row is either good or broken in one known way, and
the converter's manifest must report exactly those reasons and keep exactly the good key_ids.
Fuzzed ndjson objects of arbitrary JSON types and random bytes must at least keep the ledger
balanced (rows read = rows kept + bad rows) and never raise anything but a file-level
`QuickDrawFormatError`.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import tempfile
import time
import zipfile
from collections import Counter
from functools import partial
from pathlib import Path

import numpy as np
import orjson
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from quickdraw.data.conversion import convert
from quickdraw.data.convert_file import ConvertSettings
from quickdraw.data.formats.base import BadRow, QuickDrawFormatError
from quickdraw.data.input_files import InputStats, iter_input
from quickdraw.data.parsing import parse_drawing
from quickdraw.data.schema import SPLITS, Manifest
from tests.helpers.drawings import HEADER, SQUARE, kaggle_row, write_csv

# Class names a hostile file might carry: path characters, unicode, CSV metacharacters.
WORDS = ["cat", "../../etc", "/abs/path", "naïve ☃ 猫", 'a,b"c\r\nd', "NA", " padded "]
FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

coord = st.integers(0, 255)


@st.composite
def strokes(draw, min_points: int = 1, max_points: int = 12) -> list:
    n = draw(st.integers(min_points, max_points))
    return [draw(st.lists(coord, min_size=n, max_size=n)), draw(st.lists(coord, min_size=n, max_size=n))]  # fmt: skip


good_drawing = st.lists(strokes(), min_size=1, max_size=4)


def json_reason(text: str, otherwise: str) -> str:
    """What the JSON parser makes of `text`: `bad_json` when it cannot parse it."""
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return "bad_json"
    return otherwise


@st.composite
def csv_row(draw, key_id: int) -> tuple[list[str], str | None]:
    """One Kaggle CSV row and the reason it must be rejected for (None: it must be kept)."""
    word = draw(st.sampled_from(WORDS))
    cc = draw(st.sampled_from(["US", "NA", "", "??", "ÅÄ"]))
    drawing: object = draw(good_drawing)
    kind = draw(
        st.sampled_from(
            ["good", "good_empty_strokes", "good_float_ints", "not_json", "deep", "huge", "negative",
             "float", "nan", "mismatch", "empty", "bad_key", "missing_word", "unknown_word",
             "columns", "not_list"]
        )
    )  # fmt: skip
    reason: str | None = None
    key: object = key_id
    if kind == "good_empty_strokes":
        drawing = [[[], []], *drawing, [[], []]]
    elif kind == "good_float_ints":
        drawing = json.dumps(drawing).replace(",", ".0,", 1)  # 12.0 is still the integer 12
        reason = json_reason(drawing, None)
    elif kind == "not_json":
        # No bare CR: csv.writer leaves it unquoted when lines end in LF, which splits the row.
        drawing = "[[[" + draw(st.text(max_size=20)).replace("]", "").replace("\r", "")
        reason = "bad_json"
    elif kind == "deep":
        depth = draw(st.integers(2, 3000))
        drawing = "[" * depth + "]" * depth
        reason = json_reason(drawing, "bad_structure")
    elif kind == "huge":
        drawing[0][0][0] = draw(st.integers(256, 2**62))
        reason = "out_of_range"
    elif kind == "negative":
        drawing[0][1][0] = draw(st.integers(-(2**62), -1))
        reason = "out_of_range"
    elif kind == "float":
        drawing[0][0][0] = draw(st.floats(0.01, 254.99).filter(lambda v: v != int(v)))
        reason = "not_integer"
    elif kind == "nan":
        drawing = json.dumps(drawing).replace("[", "[" + draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999"])) + ",", 3)  # fmt: skip
        reason = "bad_json"
    elif kind == "mismatch":
        drawing[-1][0].append(draw(coord))
        reason = "length_mismatch"
    elif kind == "empty":
        drawing = draw(st.sampled_from(["[]", "[[[], []]]", "[[[], []], [[], []]]"]))
        reason = "empty_drawing"
    elif kind == "not_list":
        drawing = draw(st.sampled_from(['{"a": 1}', "7", '"text"', "null", "[7]", "[[1, 2]]"]))
        reason = "bad_structure"
    elif kind == "bad_key":
        key = draw(st.sampled_from(["", "12ab", "-5", "1.5", "9223372036854775808", "0x10", "NaN"]))
        reason = "bad_key_id"
    elif kind == "missing_word":
        word, reason = "", "missing_word"
    elif kind == "unknown_word":
        word, reason = draw(st.sampled_from(["dog", "CAT", "cat ", "../etc"])), "unknown_word"
    row = kaggle_row(key, word, drawing, countrycode=cc)
    if kind == "columns":
        row = row + ["extra"] if draw(st.booleans()) else row[: draw(st.integers(1, 5))]
        reason = "wrong_column_count"
    return row, reason


def kept_rows(store: Path) -> dict[int, dict]:
    m = Manifest.load(store)
    rows = [r for s in SPLITS for p in m.shards[s] for r in pq.read_table(store / p).to_pylist()]
    by_key = {r["key_id"]: r for r in rows}
    assert len(by_key) == len(rows), "a row was stored twice"
    return by_key


@FUZZ
@given(data=st.data(), n=st.integers(1, 30), crlf=st.booleans(), bom=st.booleans())
def test_csv_rows_counted_by_reason_and_good_rows_kept(data, n, crlf, bom):
    rows = [data.draw(csv_row(key_id=k)) for k in range(1, n + 1)]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n" if crlf else "\n").writerows([HEADER] + [r for r, _ in rows])  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "words.csv"
        src.write_bytes((b"\xef\xbb\xbf" if bom else b"") + buf.getvalue().encode())
        m = convert(src, Path(tmp) / "qd", ConvertSettings(classes=WORDS), progress=False)
        kept = kept_rows(Path(tmp) / "qd")
    expected_bad = Counter(reason for _, reason in rows if reason)
    assert m.bad_rows == dict(expected_bad)
    good = {k: r for k, (r, reason) in enumerate(rows, 1) if reason is None}
    assert set(kept) == set(good)
    assert m.sources[0]["rows_read"] == n
    classes = m.classes
    for k, row in good.items():
        assert classes[kept[k]["label"]] == row[5], "the word is stored as written"
        assert kept[k]["countrycode"] == (row[0] or None), "'NA' (Namibia) is a country, not null"


any_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)


@st.composite
def ndjson_line(draw, key_id: int) -> tuple[bytes, bool]:
    """An ndjson line and whether it is a clean row that must be kept."""
    if draw(st.booleans()):
        obj = {"word": "cat", "key_id": str(key_id), "countrycode": "NA", "drawing": draw(good_drawing)}  # fmt: skip
        return orjson.dumps(obj), True
    junk = draw(st.sampled_from(["object", "fields", "bytes"]))
    if junk == "bytes":
        return draw(st.binary(max_size=40)).replace(b"\n", b" ").replace(b"\r", b" "), False
    if junk == "object":
        return orjson.dumps(draw(any_json)), False
    obj = {"word": "cat", "key_id": str(key_id), "drawing": draw(good_drawing)}
    field = draw(st.sampled_from(["word", "key_id", "drawing", "countrycode", "recognized", "timestamp"]))  # fmt: skip
    obj[field] = draw(any_json)
    return orjson.dumps(obj), False


def ndjson_file(data, n: int) -> tuple[bytes, set[int]]:
    first = {
        "word": "cat",
        "key_id": "1",
        "drawing": SQUARE,
    }  # a readable first line: an ndjson file
    lines, good = [orjson.dumps(first)], {1}
    for k in range(2, n + 2):
        line, clean = data.draw(ndjson_line(key_id=k))
        lines.append(line)
        good |= {k} if clean else set()
    return b"\n".join(lines) + b"\n", good


def first_non_utf8_line(body: bytes) -> int | None:
    """The line (counted in newlines, from 1) of the first bytes that are not UTF-8; None if all are."""
    for n, line in enumerate(body.split(b"\n"), 1):
        try:
            line.decode()
        except UnicodeDecodeError:
            return n
    return None


def refused_as_not_utf8(body: bytes, name: str, read) -> bool:
    """Whether `read()` had to stop on bytes that are not UTF-8 (issue 27: a file in another
    encoding is an error naming its line, never U+FFFD), and did, at that line."""
    line = first_non_utf8_line(body)
    if line is None:
        return False
    with pytest.raises(QuickDrawFormatError, match=rf"{name} line {line} is not UTF-8 text"):
        read()
    return True


@FUZZ
@given(data=st.data(), n=st.integers(1, 25))
@example(data=None, n=0)  # a file holding only its first line
def test_ndjson_fuzz_never_crashes_and_keeps_the_ledger(data, n):
    body, good = ndjson_file(data, n) if data else (orjson.dumps({"word": "cat", "key_id": "1", "drawing": SQUARE}), {1})  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "cat.ndjson"
        src.write_bytes(body)
        run = partial(convert, src, Path(tmp) / "qd", ConvertSettings(classes=["cat"]), progress=False)  # fmt: skip
        if refused_as_not_utf8(body, "cat.ndjson", run):
            return
        m = run()
        kept = kept_rows(Path(tmp) / "qd")
    read = m.sources[0]["rows_read"]
    assert read == len(kept) + sum(m.bad_rows.values()) + sum(m.filtered.values())
    assert good <= set(kept)


@FUZZ
@given(data=st.data(), n=st.integers(1, 25))
def test_predict_reader_never_crashes_and_counts_bad_rows(data, n):
    body, good = ndjson_file(data, n)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "cat.ndjson"
        src.write_bytes(body)
        stats = InputStats()
        if refused_as_not_utf8(body, "cat.ndjson", lambda: list(iter_input(src, 4, stats))):
            return
        batches = list(iter_input(src, batch_size=4, stats=stats))
    keys = [int(k) for b in batches for k in b.key_ids]
    # Every row is answered (its key_id kept) or counted bad; an unreadable drawing with a
    # key_id is both: kept for its fallback guess and counted by its reason.
    assert stats.rows == len(keys) + sum(stats.bad.values()) - len(stats.unreadable)
    assert {u.key_id for u in stats.unreadable} <= set(keys)
    assert good <= set(keys)
    assert all(w is None or isinstance(w, str) for b in batches for w in b.words)


@FUZZ
@given(junk=st.binary(max_size=300))
def test_random_bytes_after_a_good_row_are_bad_rows_not_crashes(junk):
    head = ",".join(HEADER) + "\n" + ",".join(f'"{v}"' for v in kaggle_row(1, "cat")) + "\n"
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "cat.csv"
        src.write_bytes(head.encode() + junk)
        run = partial(convert, src, Path(tmp) / "qd", ConvertSettings(classes=["cat"]), progress=False)  # fmt: skip
        if refused_as_not_utf8(head.encode() + junk, "cat.csv", run):
            return
        m = run()
        kept = kept_rows(Path(tmp) / "qd")
    assert 1 in kept
    assert m.sources[0]["rows_read"] == len(kept) + sum(m.bad_rows.values())


@FUZZ
@given(member=st.text(min_size=1, max_size=40).filter(lambda s: "\x00" not in s))
def test_zip_member_names_cannot_escape_the_store(member):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        archive = root / "in" / "train.zip"
        archive.parent.mkdir()
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr(f"{member}.csv", ",".join(HEADER) + "\n" + ",".join(f'"{v}"' for v in kaggle_row(1, "cat")) + "\n")  # fmt: skip
        store = root / "out" / "qd"
        try:
            m = convert(archive, store, ConvertSettings(classes=["cat"]), progress=False)
        except QuickDrawFormatError:
            return  # a member name that is not a .csv (e.g. it ends in '/'): refused as a whole
        assert sum(m.rows.values()) == 1
        written = {p for p in root.rglob("*") if p.is_file()}
        assert written - {archive} and all(store in p.parents for p in written - {archive})


def test_ndjson_key_ids_that_are_not_integers_are_bad_rows(tmp_path):
    keys = ["1", 2, 3.0, 4.5, True, None, [5], "6e3", -7, 2**63]
    lines = [orjson.dumps({"word": "cat", "key_id": k, "drawing": SQUARE}) for k in keys]
    (tmp_path / "cat.ndjson").write_bytes(b"\n".join(lines))
    m = convert(tmp_path / "cat.ndjson", tmp_path / "qd", progress=False)
    assert set(kept_rows(tmp_path / "qd")) == {1, 2, 3}
    assert m.bad_rows == {"bad_key_id": 7}


# -- whole-file problems -------------------------------------------------------------------------
def test_missing_header_stops_with_the_file_name(tmp_path):
    path = write_csv(tmp_path / "cat.csv", [kaggle_row(k, "cat") for k in range(1, 4)], header=None)
    with pytest.raises(QuickDrawFormatError, match="header") as err:
        convert(path, tmp_path / "qd", ConvertSettings(classes=["cat"]), progress=False)
    assert str(path) in str(err.value)
    assert not (tmp_path / "qd" / "manifest.json").exists()


def bomb_row() -> str:
    return f'US,"{json.dumps(SQUARE)}",1,True,2017-01-01 00:00:00,cat\n'


@pytest.mark.parametrize("kind", ["gzip", "zip", "zip_of_gzip"])
def test_decompression_bombs_beyond_max_bytes_are_stopped(tmp_path, kind):
    text = (",".join(HEADER) + "\n" + bomb_row() * 40_000).encode()  # ~2.6 MB of text
    if kind == "gzip":
        path = tmp_path / "cat.csv.gz"
        path.write_bytes(gzip.compress(text, 9))
    else:
        path = tmp_path / "train.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            if kind == "zip":
                zf.writestr("cat.csv", text)
            else:
                zf.writestr("cat.csv.gz", gzip.compress(text, 9))
    assert path.stat().st_size < 200_000
    t0 = time.perf_counter()
    with pytest.raises(QuickDrawFormatError, match="max_bytes") as err:
        convert(path, tmp_path / "qd", ConvertSettings(max_bytes=500_000, classes=["cat"]), progress=False)  # fmt: skip
    assert str(path) in str(err.value)
    assert time.perf_counter() - t0 < 30, "stopped early, not after decompressing everything"


# -- drawings at the edges of what numbers can hold ----------------------------------------------
@pytest.mark.parametrize(
    "xs",
    [[-1e308, 1e308], [0, 1e300], [0, 5e-324], [1e308, 1e308], [2**70, 2**71]],
    ids=["span_overflows", "huge", "subnormal", "same_huge_point", "beyond_int64"],
)
def test_raw_drawings_with_extreme_coordinates_are_bad_rows_or_simplified(xs):
    stroke = [xs, [0, 0], [0, 10]]  # [x, y, t]: a raw stroke, simplified like Google's
    try:
        points, lengths = parse_drawing([stroke], "auto")
    except BadRow as e:
        assert e.reason in ("bad_coordinates", "out_of_range")
        return
    assert points.dtype.name == "uint8" and sum(lengths) == len(points) > 0


def zigzag(n: int) -> list[list[int]]:
    """A stroke across the whole frame and back, n times: every corner survives simplification."""
    return [[0 if i % 2 else 255 for i in range(n)], [i * 255 // n for i in range(n)]]


def timed(fn):
    t0 = time.perf_counter()
    try:
        return fn()
    finally:
        seconds = time.perf_counter() - t0
        assert seconds < 5, (
            f"{seconds:.1f} s for one drawing: a hostile row or demo user stalls a worker"
        )


def test_10000_point_strokes_are_read_in_bounded_time():
    points, lengths = timed(lambda: parse_drawing([zigzag(10_000)], "simplified"))
    assert len(points) == 10_000 and lengths == [10_000]
    # A pen sampled densely (raw [x, y, t]): kept, simplified to its shape.
    walk = np.cumsum(np.random.default_rng(0).normal(0, 0.3, (10_000, 2)), axis=0)
    points, _ = timed(lambda: parse_drawing([[*walk.T.tolist(), list(range(10_000))]], "raw"))
    assert 10 < len(points) < 10_000
    # The same zigzag raw is 2.5 M pixels of ink to resample: refused before simplification.
    with pytest.raises(BadRow, match="too_many_points.*ink"):
        timed(lambda: parse_drawing([[*zigzag(10_000), list(range(10_000))]], "raw"))
    with pytest.raises(BadRow, match="too_many_points"):
        parse_drawing([zigzag(10_000)], "simplified", max_points=5000)
