"""Readers for every Quick, Draw! layout: Kaggle CSV (plain, gzip, inside the zip), Google ndjson,
and, through `quickdraw.data.formats`, Google's binary files and sketch-rnn's stroke-3 `.npz`.
The files come from [`quickdraw.data.listing`][quickdraw.data.listing]; each row's drawing is
validated by [`quickdraw.data.parsing`][quickdraw.data.parsing].

They stream rows with their line numbers and validate drawings, so one bad row is counted
and skipped while a file that is not Quick, Draw! data at all stops with an error naming it.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson

from quickdraw.core.errors import MissingPathError
from quickdraw.data.formats import binary, sketchrnn
from quickdraw.data.formats.base import (
    BadRow,
    InputFile,
    QuickDrawFormatError,
    Record,
    open_bytes,
)
from quickdraw.data.text import excerpt, head_problem, sniff_bom, undecodable_message

csv.field_size_limit(sys.maxsize)  # a drawing is one (long) CSV field
log = logging.getLogger(__name__)
_DECODER = json.JSONDecoder()  # raw_decode splits glued objects (orjson reads one value only)

REQUIRED_CSV = ("drawing", "key_id")


def open_text(source: InputFile, max_bytes: int) -> io.TextIOWrapper:
    """The decompressed text of a source ([`quickdraw.data.text`][quickdraw.data.text]): UTF-8, or UTF-16/UTF-32 by
    their byte-order mark (dropped, as is UTF-8's). A file that is not text, or bytes that are not
    in its encoding, raise `QuickDrawFormatError` naming the file, the line and the encoding they
    most likely are; nothing is ever replaced by U+FFFD. Lines keep their endings (`newline=""`).
    """
    raw = open_bytes(source, max_bytes)
    head = raw.peek(4096)[:4096]
    codec, skip = sniff_bom(head)
    problem = None if skip else head_problem(head)
    if problem:
        raw.close()
        raise QuickDrawFormatError(f"{source.name} is not UTF-8 text: {problem}")
    raw.read(skip)

    def error() -> QuickDrawFormatError:
        reopen = functools.partial(open_bytes, source, max_bytes)
        return QuickDrawFormatError(undecodable_message(source.name, reopen, codec, skip))

    return _StrictText(raw, codec, error)


def open_text_file(
    path: str | Path, max_bytes: int = 16 << 30, setting: str = "file"
) -> io.TextIOWrapper:
    """[`open_text`][quickdraw.data.readers.open_text] for a side file named by a path (labels, class priors), gzip included;
    a missing one is named with the `setting` that gave it (`labels=...`)."""
    if not Path(path).is_file():
        raise MissingPathError(f"{setting}={path}: no such file")
    return open_text(InputFile(Path(path)), max_bytes)


class _StrictText(io.TextIOWrapper):
    """Text decoded strictly, whose decoding errors become the error `on_error` builds (the
    decoder reads ahead in chunks, so the line is found by [`quickdraw.data.text.first_undecodable`][quickdraw.data.text.first_undecodable])."""

    def __init__(self, buffer, encoding: str, on_error) -> None:
        super().__init__(buffer, encoding=encoding, errors="strict", newline="")
        self._on_error = on_error

    def __next__(self) -> str:
        try:
            return super().__next__()
        except UnicodeDecodeError:
            raise self._on_error() from None

    def readline(self, size: int = -1) -> str:
        try:
            return super().readline(size)
        except UnicodeDecodeError:
            raise self._on_error() from None

    def read(self, size: int | None = -1) -> str:
        try:
            return super().read(size)
        except UnicodeDecodeError:
            raise self._on_error() from None


def iter_records(
    source: InputFile, max_bytes: int, require_word: bool = True
) -> Iterator[Record | BadRow]:
    """Yield raw records (or a `BadRow` with its line) from a CSV, ndjson, binary or .npz source."""
    if source.kind in ("binary", "sketchrnn"):
        reader = binary if source.kind == "binary" else sketchrnn
        yield from reader.iter_records(source, max_bytes)
        return
    with open_text(source, max_bytes) as text:
        if source.kind == "csv":
            yield from _iter_csv(source, text, require_word)
        else:
            yield from _iter_ndjson(source, text)


def _iter_csv(source: InputFile, text, require_word: bool) -> Iterator[Record | BadRow]:
    reader = csv.reader(text)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as e:
        raise QuickDrawFormatError(f"{source.name}: not a CSV file ({e})") from e
    header = [h.strip() for h in header]
    required = REQUIRED_CSV + (("word",) if require_word else ())
    missing = [c for c in required if c not in header]
    if missing:
        raise QuickDrawFormatError(
            f"{source.name}: not a Quick, Draw! CSV: header {excerpt(','.join(header))} lacks {missing} "
            "(expected countrycode,drawing,key_id,recognized,timestamp,word)"
        )
    col = {name: header.index(name) for name in header}
    n = len(header)
    get = [
        col.get(k) for k in ("key_id", "word", "countrycode", "recognized", "timestamp", "drawing")
    ]
    rows = iter(reader)
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error as e:
            yield BadRow("bad_csv", str(e), reader.line_num)
            continue
        line = reader.line_num
        if len(row) != n:
            if not row:
                continue  # blank line
            yield BadRow("wrong_column_count", f"{len(row)} fields, expected {n}", line)
            continue
        k, w, cc, rec, ts, dr = (row[i] if i is not None else None for i in get)
        yield (line, k, w, cc, rec, ts, dr)


def _iter_ndjson(source: InputFile, text) -> Iterator[Record | BadRow]:
    """Records of an ndjson file, in order; a line holding several glued objects yields each.

    Files joined with `cat` where one lacked its final newline hold `}{` on a line; those
    objects are split and read, and counted in one warning. The file is refused as not ndjson
    only when no line holds a Quick, Draw! record; until the first record is seen, bad lines
    are held back so that the refusal can name the file instead of counting every line.
    """
    held: list[BadRow] = []
    found = False
    glued_lines = glued_records = 0
    for line_no, line in enumerate(text, 1):
        if not line.strip():
            continue
        objs, error = _json_objects(line)
        if len(objs) > 1:
            glued_lines += 1
            glued_records += len(objs)
        rows: list[Record | BadRow] = [_ndjson_record(obj, line_no) for obj in objs]
        if error is not None:
            rows.append(BadRow("bad_json", error, line_no))
        for row in rows:
            if isinstance(row, BadRow) and not found:
                held.append(row)
                continue
            if not found:
                found = True
                yield from held
                held.clear()
            yield row
    if held:
        first = held[0]
        raise QuickDrawFormatError(
            f"{source.name}: no line holds a Quick, Draw! record (a JSON object with a 'drawing'); "
            f"line {first.line} {'is not JSON' if first.reason == 'bad_json' else 'is JSON but not a record'}; "
            "not an ndjson file"
        )
    if glued_lines:
        log.warning(
            "%s: %d lines held several JSON objects with no newline between them; "
            "split into %d records (files joined without a final newline?)",
            source.name,
            glued_lines,
            glued_records,
        )


def _json_objects(line: str) -> tuple[list, str | None]:
    """The JSON values on one line, and an error for an unreadable rest (None when all was read)."""
    try:
        return [orjson.loads(line)], None
    except orjson.JSONDecodeError as e:
        first_error = str(e)[:80]
    objs: list = []
    pos, end = 0, len(line.rstrip())
    while pos < end:
        try:
            obj, pos = _DECODER.raw_decode(line, pos)
        except ValueError:
            return objs, first_error if not objs else f"unreadable JSON after object {len(objs)}"
        objs.append(obj)
        while pos < end and line[pos].isspace():
            pos += 1
    return objs, None


def _ndjson_record(obj, line_no: int) -> Record | BadRow:
    if not isinstance(obj, dict) or "drawing" not in obj:
        return BadRow("bad_structure", "not a JSON object with a 'drawing'", line_no)
    return (
        line_no,
        obj.get("key_id"),
        obj.get("word"),
        obj.get("countrycode"),
        obj.get("recognized"),
        obj.get("timestamp"),
        obj["drawing"],
    )
