"""Duplicate records (issue 27, 2.3): a key_id met twice is counted by file and served once, one
key_id under two words is an error, and a labels file or test input that repeats a key_id is too.

The family: copies within one file, across files of one class, across classes with the same
word and with another word, as CSV, ndjson, a zip of CSVs, Google's .bin and sketch-rnn .npz,
under `settings.duplicates=keep|drop|error`; an oracle that applies the documented rule (the
first copy in sorted file order, then row order) gives each case's right value. Then resuming,
files added to a store, a store read row by row around left-out rows, and the case files.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from quickdraw.data.conversion import convert
from quickdraw.data.convert_file import ConvertSettings
from quickdraw.data.duplicates import FILTERED, DuplicateKeyError
from quickdraw.data.formats import binary
from quickdraw.data.input_files import InputStats, iter_input
from quickdraw.data.labels import load_labels
from quickdraw.data.receipts import SOURCES_DIR
from quickdraw.data.schema import MANIFEST, SPLITS, Manifest
from quickdraw.data.store import Store
from tests.helpers.checkpoints import save_untrained
from tests.helpers.configs import RESNET
from tests.helpers.drawings import LINE, SQUARE, kaggle_row, write_csv

Row = tuple[int, str, list]  # key_id, word, drawing ([[xs], [ys]] strokes)
# Each scenario: file stem -> rows, in file order.
SCENARIOS: dict[str, dict[str, list[Row]]] = {
    "within_file": {
        "cat": [(1, "cat", SQUARE), (2, "cat", SQUARE), (1, "cat", SQUARE), (3, "cat", LINE),
                (2, "cat", LINE), (1, "cat", SQUARE)],
        "dog": [(9, "dog", LINE)],
    },
    "across_files_one_class": {
        "cat": [(1, "cat", SQUARE), (2, "cat", SQUARE), (3, "cat", LINE)],
        "cat (1)": [(2, "cat", SQUARE), (3, "cat", SQUARE), (4, "cat", LINE)],
    },
    "across_classes_same_word": {
        "cat": [(1, "cat", SQUARE), (2, "cat", LINE)],
        "dog": [(2, "cat", LINE), (5, "dog", SQUARE)],
    },
    "across_classes_other_word": {
        "cat": [(1, "cat", SQUARE), (2, "cat", LINE)],
        "dog": [(2, "dog", LINE), (5, "dog", SQUARE)],
    },
    "within_file_other_word": {
        "cat": [(1, "cat", SQUARE), (2, "dog", LINE), (2, "cat", LINE)],
        "dog": [(5, "dog", SQUARE)],
    },
}  # fmt: skip
# .bin and .npz name the class by the file alone: one class per file, the file's stem.
ONE_WORD_PER_FILE = {"within_file", "across_classes_other_word"}
FORMATS = ("csv", "ndjson", "zip", "bin", "npz")
POLICIES = ("keep", "drop", "error")


def ndjson_line(key: int, word: str, drawing: list) -> str:
    obj = {"word": word, "countrycode": "US", "timestamp": "2017-03-11 14:47:44.05242 UTC",
           "recognized": True, "key_id": str(key), "drawing": drawing}  # fmt: skip
    return json.dumps(obj)


def stroke3(drawing: list) -> np.ndarray:
    """[[xs], [ys]] strokes as sketch-rnn's (n, 3) offsets with pen-up flags."""
    points = [(x, y, int(i == len(xs) - 1)) for xs, ys in drawing for i, (x, y) in enumerate(zip(xs, ys, strict=True))]  # fmt: skip
    absolute = np.array(points, np.int16)
    offsets = absolute.copy()
    offsets[1:, :2] = absolute[1:, :2] - absolute[:-1, :2]
    return offsets


def write_source(root: Path, fmt: str, files: dict[str, list[Row]]) -> tuple[Path, list[str]]:
    """The scenario's files in `fmt` under `root`; returns the source and its file names."""
    root.mkdir(parents=True)
    names = []
    for stem, rows in files.items():
        if fmt in ("csv", "zip"):
            write_csv(root / f"{stem}.csv", [kaggle_row(k, w, d) for k, w, d in rows])
            names.append(f"{stem}.csv")
        elif fmt == "ndjson":
            (root / f"{stem}.ndjson").write_text("".join(ndjson_line(*r) + "\n" for r in rows))
            names.append(f"{stem}.ndjson")
        elif fmt == "bin":
            strokes = lambda d: [np.stack([xs, ys], 1) for xs, ys in d]  # noqa: E731
            (root / f"{stem}.bin").write_bytes(b"".join(binary.encode(k, strokes(d)) for k, _, d in rows))  # fmt: skip
            names.append(f"{stem}.bin")
        else:
            drawings = np.empty(len(rows), object)
            drawings[:] = [stroke3(d) for _, _, d in rows]
            keys = np.array([k for k, _, _ in rows], np.int64)
            np.savez(root / f"{stem}.npz", train=drawings, train_key_id=keys)
            names.append(f"{stem}.npz")
    if fmt != "zip":
        return root, names
    with zipfile.ZipFile(root / "all.zip", "w") as zf:
        for name in names:
            zf.write(root / name, f"train_simplified/{name}")
            (root / name).unlink()
    return root / "all.zip", names


def oracle(files: dict[str, list[Row]], names: list[str]) -> tuple[dict, dict, int]:
    """The documented rule: ({key_id: first copy's row}, {file: later copies}, conflicts)."""
    first: dict[int, Row] = {}
    repeats: dict[str, int] = {}
    conflicts = 0
    for name in sorted(names):
        for row in files[name.rsplit(".", 1)[0]]:
            if row[0] in first:
                repeats[name] = repeats.get(name, 0) + 1
                conflicts += first[row[0]][1] != row[1]
            else:
                first[row[0]] = row
    return first, repeats, conflicts


def base(name: str) -> str:
    """A file name without its folder or zip: the manifest names files by full path."""
    return re.split(r"[/!]", name)[-1]


def served(store: Path) -> list[tuple[int, str, int]]:
    """(key_id, class, points) of every row the Store serves, sorted."""
    s = Store(store)
    out = []
    for split in SPLITS:
        index = s[split]
        rows = index.gather(np.arange(len(index)))
        points = rows.strokes.num_points.tolist() if len(rows) else []
        out += zip(rows.key_ids.tolist(), [s.classes[c] for c in rows.labels], points, strict=True)
    return sorted(out)


def n_points(drawing: list) -> int:
    return sum(len(xs) for xs, _ in drawing)


CASES_GRID = [
    (scenario, fmt, policy)
    for scenario in SCENARIOS
    for fmt in FORMATS
    for policy in POLICIES
    if fmt not in ("bin", "npz") or scenario in ONE_WORD_PER_FILE
]


@pytest.mark.parametrize("scenario,fmt,policy", CASES_GRID)
def test_duplicate_key_ids_are_counted_by_file_and_served_once(tmp_path, scenario, fmt, policy):
    files = SCENARIOS[scenario]
    if fmt in ("bin", "npz"):  # the class is the file's name: give each row its file's word
        files = {stem: [(k, stem, d) for k, _, d in rows] for stem, rows in files.items()}
    source, names = write_source(tmp_path / "src", fmt, files)
    first, repeats, conflicts = oracle(files, names)
    settings = ConvertSettings(duplicates=policy, val_fraction=0.3, test_fraction=0.3)
    if repeats and (policy == "error" or (conflicts and policy == "drop")):
        with pytest.raises(DuplicateKeyError) as err:
            convert(source, tmp_path / "qd", settings, workers=1, progress=False)
        message = str(err.value)
        key = int(re.search(r"key_id (\d+) ", message).group(1))
        copies = [(n, r[1]) for n in sorted(names) for r in files[n.rsplit(".", 1)[0]] if r[0] == key]  # fmt: skip
        assert len(copies) >= 2  # a repeated key_id, named with the files that hold it
        assert all(n.rsplit(".", 1)[0] in message for n, _ in copies)
        if conflicts:  # both words
            assert len({w for _, w in copies}) == 2
            assert all(f"{w!r}" in message for _, w in copies)
        return
    m = convert(source, tmp_path / "qd", settings, workers=1, progress=False)
    d = m.duplicates
    assert d["policy"] == policy and d["rows"] == sum(repeats.values())
    assert {base(k): v for k, v in d["by_file"].items()} == repeats
    assert {base(s["name"]): s["duplicates"] for s in m.sources} == {n: repeats.get(n, 0) for n in names}  # fmt: skip
    assert d["conflicting_labels"] == conflicts
    every = sorted((k, w, n_points(dr)) for rows in files.values() for k, w, dr in rows)
    once = sorted((k, w, n_points(dr)) for k, w, dr in first.values())
    got = [(k, w, p) for k, w, p in served(tmp_path / "qd")]
    if policy == "keep":
        assert sorted(got) == every
    else:  # the first copy in sorted file order, its word and its drawing
        assert got == once
        assert m.filtered.get(FILTERED, 0) == sum(repeats.values())
    read = sum(s["rows_read"] for s in m.sources)
    assert read == sum(s["rows_kept"] for s in m.sources) + sum(m.filtered.values())
    assert sum(m.rows.values()) == len(got)


def test_a_conflict_within_a_file_names_both_lines(tmp_path):
    source, _ = write_source(tmp_path / "src", "csv", SCENARIOS["within_file_other_word"])
    with pytest.raises(DuplicateKeyError, match=r"key_id 2 is labelled 'dog' \(.*cat.csv line 3\) and 'cat' \(.*cat.csv line 4\)"):  # fmt: skip
        convert(source, tmp_path / "qd", workers=1, progress=False)


def test_a_different_drawing_under_one_key_id_is_a_duplicate_counted_apart(tmp_path):
    source, _ = write_source(tmp_path / "src", "csv", SCENARIOS["within_file"])
    m = convert(source, tmp_path / "qd", workers=1, progress=False)
    # key 2: SQUARE first, then a LINE; key 1: the same SQUARE twice more.
    assert m.duplicates["different_drawing"] == 1 and m.duplicates["rows"] == 3
    by_key = {e["line"]: e["same_drawing"] for e in m.duplicates["examples"]}
    assert by_key == {4: True, 6: False, 7: True}


def test_the_case_re_download_is_stored_once_and_reported_by_file(cases, tmp_path, caplog):
    src = cases / "round3" / "dup_download"
    with caplog.at_level("WARNING"):
        m = convert(src, tmp_path / "qd", workers=1, progress=False)
    assert sum(m.rows.values()) == 20 and m.duplicates["rows"] == 20
    # "cat (1).csv" sorts before "cat.csv": its copies are kept, cat.csv's are the repeats.
    assert {base(k): v for k, v in m.duplicates["by_file"].items()} == {"cat.csv": 20}
    assert {base(s["name"]): s["rows_kept"] for s in m.sources} == {"cat (1).csv": 20, "cat.csv": 0}
    assert len({k for k, _, _ in served(tmp_path / "qd")}) == 20 == len(served(tmp_path / "qd"))
    assert "cat.csv: 20 repeated key_ids" in caplog.text and "first in" in caplog.text
    with pytest.raises(DuplicateKeyError, match="20 rows repeat a key_id"):
        convert(src, tmp_path / "qd", ConvertSettings(duplicates="error"), progress=False)


def cat_source(root: Path, files: dict[str, list[int]]) -> Path:
    for name, keys in files.items():
        write_csv(root / name, [kaggle_row(k, "cat", SQUARE if k % 2 else LINE) for k in keys])
    return root


def test_resumed_and_grown_stores_serve_what_a_fresh_conversion_serves(tmp_path):
    """Resume after an interruption between files, and files added later (one sorting before
    the files converted: its copies become the kept ones), equal one uninterrupted conversion."""
    files = {
        "b.csv": list(range(1, 40)),
        "c.csv": list(range(30, 60)),
        "a.csv": list(range(35, 45)),
    }
    settings = dict(val_fraction=0.2, test_fraction=0.2, row_group_size=4)
    fresh = convert(cat_source(tmp_path / "all", files), tmp_path / "fresh",
                    ConvertSettings(**settings), workers=1, progress=False)  # fmt: skip
    grown = tmp_path / "grown"
    cat_source(grown, {"b.csv": files["b.csv"]})
    convert(grown, tmp_path / "g", ConvertSettings(**settings), workers=1, progress=False)
    cat_source(grown, {"c.csv": files["c.csv"], "a.csv": files["a.csv"]})
    m = convert(grown, tmp_path / "g", ConvertSettings(**settings), workers=1, progress=False)
    # Interrupted after its first file: one receipt, no manifest.
    shutil.copytree(tmp_path / "fresh", tmp_path / "cut")
    (tmp_path / "cut" / MANIFEST).unlink()
    for receipt in sorted((tmp_path / "cut" / SOURCES_DIR).glob("*.json"))[1:]:
        if not receipt.name.startswith("_"):
            receipt.unlink()
    resumed = convert(tmp_path / "all", tmp_path / "cut", ConvertSettings(**settings), workers=1, progress=False)  # fmt: skip
    want = served(tmp_path / "fresh")
    assert len(want) == 59 and fresh.duplicates["rows"] == 20
    for store, got in ((tmp_path / "g", m), (tmp_path / "cut", resumed)):
        assert served(store) == want
        assert {base(k): v for k, v in got.duplicates["by_file"].items()} == {
            "b.csv": 5,
            "c.csv": 15,
        }
        assert got.counts == fresh.counts


def test_a_store_switches_between_drop_and_error_without_converting_again(tmp_path):
    source = cat_source(tmp_path / "src", {"a.csv": [1, 2, 3], "b.csv": [3, 4]})
    with pytest.raises(DuplicateKeyError, match="key_id 3 in .*a.csv and again in .*b.csv"):
        convert(source, tmp_path / "qd", ConvertSettings(duplicates="error"), workers=1, progress=False)  # fmt: skip
    receipts = {p: p.stat().st_mtime_ns for p in (tmp_path / "qd" / SOURCES_DIR).glob("*.json")}
    m = convert(source, tmp_path / "qd", ConvertSettings(duplicates="drop"), workers=1, progress=False)  # fmt: skip
    assert sum(m.rows.values()) == 4 and m.duplicates["rows"] == 1
    assert receipts == {p: p.stat().st_mtime_ns for p in receipts}  # nothing converted again
    with pytest.raises(ValueError, match="other settings .*duplicates"):
        convert(source, tmp_path / "qd", ConvertSettings(duplicates="keep"), progress=False)


def test_a_store_converted_before_duplicates_were_looked_for_gets_them_on_the_next_run(tmp_path):
    source = cat_source(tmp_path / "src", {"a.csv": [1, 2, 3], "b.csv": [2, 3, 4]})
    convert(source, tmp_path / "qd", workers=1, progress=False)
    path = tmp_path / "qd" / MANIFEST
    old = json.loads(path.read_text())
    old.pop("duplicates")
    old["counts"]["train"] = [6]  # as an older quickdraw counted every copy
    old["counts"]["val"] = old["counts"]["test"] = [0]
    path.write_text(json.dumps(old))
    m = convert(source, tmp_path / "qd", ConvertSettings(val_fraction=0.05), progress=False)
    assert m.duplicates["rows"] == 2 and sum(m.rows.values()) == 4
    assert Manifest.load(tmp_path / "qd").duplicates["by_file"]


def test_the_store_leaves_out_rows_across_row_groups_and_whole_groups(tmp_path):
    """Copies at the start, middle and end of row groups of 4, and a group of copies only."""
    keys = list(range(100, 140))
    repeat = [100, 101, 103, 104, 105, 106, 107, 110, 139]
    source = cat_source(tmp_path / "src", {"a.csv": keys, "b.csv": repeat + [200, 201]})
    settings = ConvertSettings(val_fraction=0, test_fraction=0, row_group_size=4)
    m = convert(source, tmp_path / "qd", settings, workers=1, progress=False)
    s = Store(tmp_path / "qd")
    index = s["train"]
    assert len(index) == 42 == m.counts["train"][0] == index.class_rows[0]
    rows = index.gather(index.class_to_global(0, np.arange(42)))
    assert sorted(rows.key_ids.tolist()) == keys + [200, 201]
    # b.csv: 11 rows in groups of 4; the first two groups are copies only, so one is left out whole.
    assert m.duplicates["dropped"] and sum(len(v) for v in m.duplicates["dropped"].values()) == 9
    reversed_ids = np.arange(42)[::-1]
    assert index.gather(reversed_ids).key_ids.tolist() == rows.key_ids[::-1].tolist()


# -- labels and test inputs of evaluate and predict ---------------------------------------------------
def test_the_case_labels_file_with_two_labels_for_one_key_id_is_an_error(cases):
    with pytest.raises(ValueError) as err:
        load_labels(cases / "round3" / "dup_labels.csv")
    message = str(err.value)
    assert "key_id 2000000000000000" in message
    assert "'The_Eiffel_Tower' on line 2" in message and "'house' on line 10" in message


@pytest.mark.parametrize(
    "second,conflict",
    [("cat", False), ("  Cat ", False), ("hot_dog", True), ("dog", True), ("", True)],
)
def test_a_key_id_labelled_twice_is_kept_once_or_refused(tmp_path, second, conflict):
    path = tmp_path / "labels.csv"
    path.write_text(f"key_id,word\n1,cat\n2,dog\n1,{second}\n")
    if conflict:
        with pytest.raises(ValueError, match=f"key_id 1 has two labels, 'cat' on line 2 and {second!r} on line 4"):  # fmt: skip
            load_labels(path)
    else:
        assert load_labels(path) == {1: "cat", 2: "dog"}


@pytest.fixture(scope="module")
def case_model(tmp_path_factory):
    from quickdraw.models.loading import load_model

    path = tmp_path_factory.mktemp("ckpt") / "cases.ckpt"
    save_untrained(path, RESNET, classes=("The Eiffel Tower", "cat", "hot dog", "house"))
    return load_model(str(path), "cpu")


def test_evaluate_refuses_the_case_labels_before_scoring(cases, case_model, tmp_path):
    from quickdraw.evaluation.score import evaluate

    with pytest.raises(ValueError, match="key_id 2000000000000000 has two labels"):
        evaluate(case_model, tmp_path / "ev", input=str(cases / "spaces_test.csv"),
                 labels=str(cases / "round3" / "dup_labels.csv"))  # fmt: skip


def repeated_input(tmp_path: Path, fmt: str) -> Path:
    rows = [(7, "cat", SQUARE), (8, "cat", LINE), (7, "cat", SQUARE)]
    if fmt == "csv":
        return write_csv(tmp_path / "test.csv", [kaggle_row(k, w, d) for k, w, d in rows])
    if fmt == "csv.gz":
        path = tmp_path / "test.csv.gz"
        with gzip.open(path, "wt", newline="") as f:
            csv.writer(f).writerows([["key_id", "drawing"]] + [[k, json.dumps(d)] for k, _, d in rows])  # fmt: skip
        return path
    path = tmp_path / "test.ndjson"
    path.write_text("".join(ndjson_line(*r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("fmt", ["csv", "csv.gz", "ndjson"])
def test_a_test_input_that_repeats_a_key_id_is_refused_by_predict_and_evaluate(
    tmp_path, case_model, fmt
):
    from quickdraw.evaluation.score import evaluate
    from quickdraw.evaluation.submission import write_submission

    src = repeated_input(tmp_path, fmt)
    first, again = (1, 3) if fmt == "ndjson" else (2, 4)  # a CSV's first line is its header
    with pytest.raises(
        ValueError, match=rf"line {again}: key_id 7 again \(first at .*line {first}\)"
    ):
        list(iter_input(src, 2, InputStats()))  # the reader itself refuses, for every caller
    out = tmp_path / "submission.csv"
    with pytest.raises(
        ValueError, match=rf"line {again}: key_id 7 again \(first at .*line {first}\)"
    ):
        write_submission(case_model, str(src), out, batch_size=2)
    assert not out.exists()
    labels = tmp_path / "labels.csv"
    labels.write_text("key_id,word\n7,cat\n8,cat\n")
    with pytest.raises(ValueError, match="key_id 7 again"):
        evaluate(case_model, tmp_path / "ev", input=str(src), labels=str(labels))


def test_the_stroke3_export_of_a_store_with_duplicates_holds_each_drawing_once(tmp_path):
    from quickdraw.data.formats.sketchrnn_writer import write_npz

    source = cat_source(tmp_path / "src", {"a.csv": list(range(1, 30)), "b.csv": list(range(20, 40))})  # fmt: skip
    convert(source, tmp_path / "qd", workers=1, progress=False)
    written = write_npz(tmp_path / "qd", tmp_path / "npz", progress=False)
    arrays = np.load(tmp_path / "npz" / "cat.npz", allow_pickle=False)
    keys = np.concatenate([arrays[f"{s}_key_id"] for s in ("train", "valid", "test")])
    assert sorted(keys.tolist()) == list(range(1, 40)) and sum(written["cat"].values()) == 39
