"""The seven reliability guarantees, each checked on the failing input a user met (``../shared/cases``).

Point 3 (uploaded images of any pen) is checked over a generated family in ``tests/test_demo.py``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from conftest import SQUARE

from quickdraw.data.convert import ConvertSettings, convert
from quickdraw.data.readers import QuickDrawFormatError


# -- 6. glued ndjson records -------------------------------------------------------------------------
def test_glued_ndjson_records_are_split_and_all_kept(cases, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        m = convert(cases / "glued.ndjson", tmp_path / "qd", ConvertSettings(classes=["monkey"]), progress=False)  # fmt: skip
    assert sum(m.rows.values()) == 6 and not m.bad_rows
    assert "2 lines held several JSON objects" in caplog.text and "split into 4 records" in caplog.text


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
