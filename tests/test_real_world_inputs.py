"""The seven reliability guarantees, each checked on the failing input a user met (``../shared/cases``).

Point 3 (uploaded images of any pen) is checked over a generated family in ``tests/test_demo.py``.
"""

from __future__ import annotations

import csv
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SQUARE
from test_demo import RESNET, save_untrained

from quickdraw.data.convert import ConvertSettings, convert
from quickdraw.data.readers import QuickDrawFormatError

CASE_CLASSES = ("The Eiffel Tower", "cat", "hot dog", "house")


def cli(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args, f"hydra.run.dir={cwd}/run"],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


@pytest.fixture(scope="module")
def case_ckpt(tmp_path_factory) -> Path:
    """An untrained model over the cases' four classes: scoring counts rows, not skill."""
    path = tmp_path_factory.mktemp("ckpt") / "cases.ckpt"
    return save_untrained(path, RESNET, classes=CASE_CLASSES)


# -- 1. labels in Kaggle spelling ---------------------------------------------------------------------
def test_labels_in_kaggle_spelling_are_all_scored(cases, case_ckpt, tmp_path):
    r = cli("quickdraw.evaluate", f"ckpt_path={case_ckpt}", f"input={cases / 'spaces_test.csv'}",
            f"labels={cases / 'underscore_labels.csv'}", cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["drawings"] == 8 and metrics["unmatched_labels"]["count"] == 0
    assert r.stdout.startswith("8 drawings")


def test_labels_naming_no_class_are_reported_and_none_matching_is_an_error(
    cases, case_ckpt, tmp_path
):
    rows = list(csv.reader((cases / "underscore_labels.csv").open()))
    rows[1][1], rows[2][1] = "  the_eiffel_TOWER ", "Eiffel Tower"
    labels = tmp_path / "labels.csv"
    csv.writer(labels.open("w", newline="")).writerows(rows)
    test = cases / "spaces_test.csv"
    r = cli("quickdraw.evaluate", f"ckpt_path={case_ckpt}", f"input={test}", f"labels={labels}", cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "1 labels name no class of the checkpoint (first: 'Eiffel Tower')" in r.stdout + r.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["drawings"] == 7
    assert metrics["unmatched_labels"] == {"count": 1, "first": ["Eiffel Tower"]}
    labels.write_text("key_id,word\n" + "".join(f"{r[0]},dog\n" for r in rows[1:]))
    r = cli("quickdraw.evaluate", f"ckpt_path={case_ckpt}", f"input={test}", f"labels={labels}", cwd=tmp_path)  # fmt: skip
    assert r.returncode == 2 and "no label matches a class" in r.stdout + r.stderr
    assert "8 labels name no class" in r.stdout + r.stderr


# -- 2. every test row gets a prediction --------------------------------------------------------------
def test_predict_answers_every_row_in_order_and_lists_the_unreadable(cases, case_ckpt, tmp_path):
    out = tmp_path / "submission.csv"
    src = cases / "test_with_empty.csv"
    r = cli("quickdraw.predict", f"ckpt_path={case_ckpt}", f"input={src}", f"output={out}", cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    keys = [row[0] for row in csv.reader(src.open())][1:]
    got = list(csv.reader(out.open()))
    assert [row[0] for row in got[1:]] == keys and len(keys) == 4
    assert all(len(row[1].split(" ")) == 3 for row in got[1:])
    side = list(csv.DictReader((tmp_path / "submission.unreadable.csv").open()))
    assert [(u["line"], u["key_id"], u["reason"]) for u in side] == [
        ("3", keys[1], "empty_drawing"),
        ("4", keys[2], "out_of_range"),
    ]
    assert (
        "line 3 (empty_drawing), line 4 (out_of_range)" in r.stdout + r.stderr
        and "line None" not in r.stdout + r.stderr
    )
    strict = tmp_path / "strict.csv"
    r = cli("quickdraw.predict", f"ckpt_path={case_ckpt}", f"input={src}", f"output={strict}", "strict=true", cwd=tmp_path)  # fmt: skip
    assert r.returncode == 2 and "strict=true: 2 drawings cannot be read" in r.stdout + r.stderr
    assert not strict.exists()


def test_evaluate_counts_unreadable_rows_as_wrong(cases, case_ckpt, tmp_path):
    src = cases / "test_with_empty.csv"
    labels = tmp_path / "labels.csv"
    keys = [row[0] for row in csv.reader(src.open())][1:]
    labels.write_text("key_id,word\n" + "".join(f"{k},cat\n" for k in keys))
    r = cli("quickdraw.evaluate", f"ckpt_path={case_ckpt}", f"input={src}", f"labels={labels}", cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["drawings"] == 4 and metrics["unreadable_counted_wrong"] == 2
    assert [u["line"] for u in metrics["unreadable"]] == [3, 4]
    assert metrics["test/acc"] <= 0.5 and metrics["test/map3"] <= 0.5
    assert (tmp_path / "run" / "unreadable.csv").is_file()


# -- 6. glued ndjson records -------------------------------------------------------------------------
def test_glued_ndjson_records_are_split_and_all_kept(cases, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        m = convert(cases / "glued.ndjson", tmp_path / "qd", ConvertSettings(classes=["monkey"]), progress=False)  # fmt: skip
    assert sum(m.rows.values()) == 6 and not m.bad_rows
    assert (
        "2 lines held several JSON objects" in caplog.text and "split into 4 records" in caplog.text
    )


def test_ndjson_is_refused_only_when_no_line_holds_a_record(tmp_path):
    record = json.dumps({"word": "cat", "key_id": "7", "drawing": SQUARE})
    path = tmp_path / "cat.ndjson"
    path.write_text("garbage\n[1, 2]\n" + record + "\n")
    m = convert(path, tmp_path / "qd", ConvertSettings(classes=["cat"]), progress=False)
    assert sum(m.rows.values()) == 1 and m.bad_rows == {"bad_json": 1, "bad_structure": 1}
    bad = tmp_path / "bad" / "cat.ndjson"
    bad.parent.mkdir()
    bad.write_text("garbage\n[1, 2]\n")
    with pytest.raises(QuickDrawFormatError, match="no line holds a Quick, Draw! record"):
        convert(bad, tmp_path / "qd2", ConvertSettings(classes=["cat"]), progress=False)
