"""Google's binary files and sketch-rnn .npz: every row accounted for, safe loading, stroke-3 round trip."""

from __future__ import annotations

import gzip
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from quickdraw.data.conversion import convert
from quickdraw.data.convert_file import ConvertSettings
from quickdraw.data.formats import binary, sketchrnn
from quickdraw.data.formats.base import InputFile, QuickDrawFormatError
from quickdraw.data.formats.safe_npz import UnsafeFileError
from quickdraw.data.formats.sketchrnn_writer import write_npz
from quickdraw.data.input_files import InputStats, iter_input
from quickdraw.data.readers import iter_records
from quickdraw.data.schema import SPLITS
from quickdraw.data.store import Store
from tests.helpers.commands import run_module

# The generated store and the trained checkpoint of test_train.py, shared (session fixtures):
# pytest fixtures are used as parameters of the same name, which ruff counts as redefinitions.
from tests.helpers.drawings import TINY_CLASSES as CLASSES


def store_rows(path: Path) -> dict[int, tuple]:
    """key_id -> (split, class, points bytes, stroke lengths) of every row of a store."""
    store, out = Store(path), {}
    for split in SPLITS:
        index = store[split]
        rows = index.gather(np.arange(len(index)))
        for i, key in enumerate(rows.key_ids.tolist()):
            strokes = rows.strokes.drawing(i)
            out[key] = (
                split,
                store.classes[rows.labels[i]],
                np.concatenate(strokes).astype(np.uint8).tobytes(),
                [len(s) for s in strokes],
            )
    return out


def random_drawings(n: int, seed: int = 0) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [
        [rng.integers(0, 256, (rng.integers(1, 40), 2)) for _ in range(rng.integers(1, 8))]
        for _ in range(n)
    ]


# -- Google's binary layout ----------------------------------------------------------------------
def test_binary_file_converts_with_every_row_accounted_for(tmp_path):
    drawings = random_drawings(300)
    records = [
        binary.encode(10_000 + i, d, "GB" if i % 2 else "US", bool(i % 3), 1_490_000_000 + i)
        for i, d in enumerate(drawings)
    ]
    records.insert(150, binary.encode(7, []))  # a record without strokes
    body = b"".join(records)
    src = tmp_path / "src"
    src.mkdir()
    (src / "cat.bin").write_bytes(body + binary.encode(8, drawings[0])[:25])  # cut short
    m = convert(src, tmp_path / "qd", progress=False)
    assert m.classes == ["cat"]
    assert m.sources[0]["rows_read"] == 302 and sum(m.rows.values()) == 300
    assert m.bad_rows == {"empty_drawing": 1, "truncated_record": 1}
    cut = next(e for e in m.bad_examples if e["reason"] == "truncated_record")
    assert f"byte offset {len(body)}" in cut["detail"] and cut["file"].endswith("cat.bin")
    rows = store_rows(tmp_path / "qd")
    for i, d in enumerate(drawings):
        _, word, points, lengths = rows[10_000 + i]
        assert word == "cat" and lengths == [len(s) for s in d]
        assert points == np.concatenate(d).astype(np.uint8).tobytes()
    first = next(r for r in iter_records(InputFile(src / "cat.bin"), 1 << 30) if r[1] == 10_003)
    assert first[3:6] == ("GB", False, "2017-03-20T08:53:23")  # countrycode, recognized, UTC time


def test_binary_reader_is_the_same_in_any_chunking_and_gzipped(tmp_path, monkeypatch):
    body = b"".join(binary.encode(i + 1, d) for i, d in enumerate(random_drawings(50, seed=1)))
    (tmp_path / "cat.bin").write_bytes(body)
    (tmp_path / "cat.bin.gz").write_bytes(gzip.compress(body))

    def read(name: str) -> list:
        return [
            (r[1], r[-1].points.tobytes(), r[-1].lengths)
            for r in iter_records(InputFile(tmp_path / name), 1 << 30)
        ]

    whole = read("cat.bin")
    assert len(whole) == 50
    monkeypatch.setattr(binary, "CHUNK", 7)  # records straddle every chunk boundary
    assert read("cat.bin") == whole and read("cat.bin.gz") == whole


@pytest.mark.parametrize(
    "content, message",
    [
        (b'{"word": "cat", "drawing": [[[1, 2], [3, 4]]]}\n', "not a Quick, Draw! binary file"),
        (bytes(range(256)) * 4, "not a Quick, Draw! binary file"),
        (b"\x01\x02\x03", "shorter than one record"),
        (gzip.compress(binary.encode(1, [[[1, 2]]])), "rename it to cat.bin.gz"),
    ],
)
def test_file_not_in_binary_layout_is_refused_with_its_name(tmp_path, content, message):
    (tmp_path / "cat.bin").write_bytes(content)
    with pytest.raises(QuickDrawFormatError, match=message) as err:
        convert(
            tmp_path / "cat.bin", tmp_path / "qd", ConvertSettings(classes=["cat"]), progress=False
        )
    assert "cat.bin" in str(err.value)


def test_damaged_record_mid_file_keeps_the_rows_before_it(tmp_path):
    records = [binary.encode(i + 1, d) for i, d in enumerate(random_drawings(5, seed=2))]
    broken = bytearray(records[3])
    broken[10] = 9  # recognized must be 0 or 1: from here on the record boundaries are lost
    records[3] = bytes(broken)
    (tmp_path / "cat.bin").write_bytes(b"".join(records))
    m = convert(tmp_path / "cat.bin", tmp_path / "qd", progress=False)
    assert set(store_rows(tmp_path / "qd")) == {1, 2, 3}
    assert m.bad_rows == {"bad_record": 1}
    offset = sum(map(len, records[:3]))
    assert f"byte offset {offset}: record has recognized byte 9" in m.bad_examples[0]["detail"]


# -- sketch-rnn .npz ---------------------------------------------------------------------------------
def objects(*drawings) -> np.ndarray:
    out = np.empty(len(drawings), object)
    for i, d in enumerate(drawings):
        out[i] = np.asarray(d)
    return out


def stroke3(n: int, seed: int) -> list[np.ndarray]:
    """Drawings as sketch-rnn stores them: int16 offsets in raw canvas pixels, far beyond 255."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        d = np.zeros((rng.integers(2, 30), 3), np.int16)
        d[:, :2] = rng.integers(-60, 61, (len(d), 2))
        d[rng.integers(0, len(d), 3), 2] = 1
        d[-1, 2] = 1
        out.append(d)
    return out


def test_stroke3_is_aligned_and_scaled_like_googles_simplification():
    # Absolute points (100,50) (610,50) | (100,150) (100,150): top-left to (0,0), scale 255/510.
    d = np.array([[100, 50, 0], [510, 0, 1], [-510, 100, 0], [0, 0, 1]], np.int16)
    points, lengths = sketchrnn.stroke3_to_points(d)
    assert points.tolist() == [[0, 0], [255, 0], [0, 50]] and lengths == [2, 1]  # repeat dropped
    # A small drawing is scaled up, as Google scales every drawing to 255 on its longer side.
    points, _ = sketchrnn.stroke3_to_points(np.array([[5, 5, 0], [10, 5, 1]], np.int16))
    assert points.tolist() == [[0, 0], [255, 128]]


def test_sketchrnn_npz_converts_every_row_and_keeps_its_own_split(tmp_path):
    train, valid, test = stroke3(40, 0), stroke3(7, 1), stroke3(5, 2)
    bad = [
        np.zeros((0, 3), np.int16),  # empty_drawing
        np.zeros((4, 2), np.int16),  # bad_structure: not (n, 3)
        np.ones((3, 3), np.float32),  # bad_structure: not integers
        np.array([[1, 1, 2]], np.int16),  # bad_structure: pen state 2
    ]
    src = tmp_path / "src"
    src.mkdir()
    np.savez(
        src / "The Eiffel Tower.npz",
        train=objects(*train, *bad),
        valid=objects(*valid),
        test=objects(*test),
    )
    m = convert(src, tmp_path / "own", ConvertSettings(keep_source_split=True), progress=False)
    assert m.classes == ["The Eiffel Tower"]
    assert m.rows == {"train": 40, "val": 7, "test": 5}
    assert m.bad_rows == {"bad_structure": 3, "empty_drawing": 1}
    assert {e["line"] for e in m.bad_examples} == {
        "train[40]",
        "train[41]",
        "train[42]",
        "train[43]",
    }
    # key_ids are stable without the file's help: the same in another folder, by the documented rule.
    rows = store_rows(tmp_path / "own")
    expected = sketchrnn.synthetic_key_id("The Eiffel Tower/valid/3")
    assert rows[expected][0] == "val"
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "The Eiffel Tower.npz").write_bytes((src / "The Eiffel Tower.npz").read_bytes())
    hashed = convert(other, tmp_path / "hashed", progress=False)
    assert set(store_rows(tmp_path / "hashed")) == set(rows)
    assert (
        hashed.rows != m.rows
    )  # without keep_source_split the key_id hash decides (5% val, 5% test)


def test_crafted_npz_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "marker"

    class Payload:
        def __reduce__(self):
            return os.mkdir, (str(marker),)

    np.savez(tmp_path / "cat.npz", train=objects(np.zeros((2, 3), np.int16), Payload()))
    # The file is really dangerous: numpy's own loader with pickles allowed runs its payload.
    np.load(tmp_path / "cat.npz", allow_pickle=True)["train"]
    assert marker.is_dir()
    marker.rmdir()
    with pytest.raises(
        UnsafeFileError, match=r"cat.npz: member train.npy: its pickle asks for (posix|os)\.mkdir"
    ):
        convert(tmp_path / "cat.npz", tmp_path / "qd", progress=False)
    with pytest.raises(UnsafeFileError, match="refusing to load it"):
        list(iter_input(tmp_path / "cat.npz", 8, InputStats()))
    assert not marker.exists()


def test_npz_that_is_not_sketchrnn_is_refused_with_its_name(tmp_path):
    np.savez(tmp_path / "cat.npz", images=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(QuickDrawFormatError, match="cat.npz: no train, valid or test array"):
        convert(tmp_path / "cat.npz", tmp_path / "qd", progress=False)
    (tmp_path / "dog.npz").write_bytes(b"not a zip")
    with pytest.raises(QuickDrawFormatError, match=r"dog.npz: not an .npz \(zip\) archive"):
        convert(tmp_path / "dog.npz", tmp_path / "qd2", progress=False)
    with zipfile.ZipFile(tmp_path / "eel.npz", "w") as zf:
        zf.writestr("train.npy", b"\x93NUMPY garbage")
    with pytest.raises(QuickDrawFormatError, match="eel.npz: member train.npy is not a readable"):
        convert(tmp_path / "eel.npz", tmp_path / "qd3", progress=False)


# -- stroke-3 export ---------------------------------------------------------------------------------
def test_round_trip_store_npz_store_keeps_every_drawing(tiny_store, tmp_path):
    written = write_npz(tiny_store, tmp_path / "npz", progress=False)
    assert sorted(written) == CLASSES and sum(sum(c.values()) for c in written.values()) == 320
    with np.load(tmp_path / "npz" / f"{CLASSES[0]}.npz") as f:  # plain numpy reads what it holds
        assert {"train", "valid", "test"} <= set(f.files) and "frame" in f.files
    convert(
        tmp_path / "npz", tmp_path / "back", ConvertSettings(keep_source_split=True), progress=False
    )
    original = store_rows(tiny_store)
    assert store_rows(tmp_path / "back") == original and len(original) == 320


def test_export_of_chosen_classes_and_splits(tiny_store, tmp_path):
    written = write_npz(tiny_store, tmp_path, classes=[CLASSES[1]], splits=["test"], progress=False)
    assert [p.name for p in tmp_path.glob("*.npz")] == [f"{CLASSES[1]}.npz"]
    counts = written[CLASSES[1]]
    assert counts["train"] == counts["val"] == 0 and counts["test"] > 0
    with pytest.raises(ValueError, match=rf"no class '{CLASSES[1]}x'; did you mean {CLASSES[1]}"):
        write_npz(tiny_store, tmp_path, classes=[CLASSES[1] + "x"], progress=False)
    with pytest.raises(ValueError, match="no split 'valid'"):
        write_npz(tiny_store, tmp_path, splits=["valid"], progress=False)


# -- evaluate and predict ------------------------------------------------------------------------------
def test_evaluate_and_predict_read_binary_and_sketchrnn_inputs(smoke_run, tiny_store, tmp_path):
    store = Store(tiny_store)
    rows = store["test"].gather(np.arange(len(store["test"])))
    for c, name in enumerate(store.classes):
        mine = np.flatnonzero(rows.labels == c)
        records = [binary.encode(int(rows.key_ids[i]), rows.strokes.drawing(i)) for i in mine]
        (tmp_path / "bin").mkdir(exist_ok=True)
        (tmp_path / "bin" / f"{name}.bin").write_bytes(b"".join(records))
        drawings = sketchrnn.batch_to_stroke3(rows.strokes.select(mine))
        for d in drawings:
            d[0, :2] += 400  # as in sketch-rnn's own files: outside the frame, aligned and scaled
        (tmp_path / "npz").mkdir(exist_ok=True)
        empty = objects()
        np.savez(
            tmp_path / "npz" / f"{name}.npz", train=empty, valid=empty, test=objects(*drawings)
        )
    n = len(rows)
    for kind in ("bin", "npz"):
        r = run_module("quickdraw.evaluate", f"ckpt_path={smoke_run / 'checkpoints' / 'best.ckpt'}",
                 f"input={tmp_path / kind}", cwd=tmp_path)  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert f"{n} drawings: top-1" in r.stdout
        out = tmp_path / f"{kind}.csv"
        r = run_module("quickdraw.predict", f"ckpt_path={smoke_run / 'checkpoints' / 'best.ckpt'}",
                 f"input={tmp_path / kind}", f"output={out}", cwd=tmp_path)  # fmt: skip
        assert r.returncode == 0, r.stderr
        lines = out.read_text().splitlines()[1:]
        assert len(lines) == n and all(len(line.split(",")[1].split(" ")) == 3 for line in lines)
        if kind == "bin":
            assert {int(line.split(",")[0]) for line in lines} == set(rows.key_ids.tolist())
