"""Readers for every Quick, Draw! layout: Kaggle CSV (plain, gzip, inside the zip), Google ndjson,
and, through `quickdraw.data.formats`, Google's binary files and sketch-rnn's stroke-3 `.npz`.

They stream rows with their line numbers and validate drawings, so one bad row is counted
and skipped while a file that is not Quick, Draw! data at all stops with an error naming it.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import logging
import os
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson

from quickdraw.core.errors import MissingPathError
from quickdraw.data.artefacts import artefact_in_path, artefact_kind
from quickdraw.data.formats import binary, sketchrnn
from quickdraw.data.formats.base import (
    INT64_MAX,
    SUFFIXES,
    BadRow,
    InputFile,
    ParsedDrawing,
    QuickDrawFormatError,
    Record,
    open_bytes,
)
from quickdraw.data.simplify import simplify_timed
from quickdraw.data.text import excerpt, head_problem, sniff_bom, undecodable_message

csv.field_size_limit(sys.maxsize)  # a drawing is one (long) CSV field
log = logging.getLogger(__name__)
_DECODER = json.JSONDecoder()  # raw_decode splits glued objects (orjson reads one value only)

REQUIRED_CSV = ("drawing", "key_id")
# Raw drawings are resampled every pixel of the 255 px frame before RDP, whose time grows with that
# count (times the corners kept): a 5000-point zigzag across the frame is 1.3 M points and takes
# minutes. Real drawings hold a few thousand pixels of ink (the largest in Kaggle's sample ~31 000).
MAX_INK_PX = 65_536


@dataclass
class Listing:
    """What a source path holds: its input files, and the operating-system artefacts skipped
    ([`quickdraw.data.artefacts`][quickdraw.data.artefacts]; kind -> the paths skipped, a hidden folder counted once)."""

    sources: list[InputFile] = field(default_factory=list)
    skipped: dict[str, list[str]] = field(default_factory=dict)

    def skip(self, kind: str, where: str) -> None:
        self.skipped.setdefault(kind, []).append(where)

    def add(self, other: Listing) -> None:
        self.sources += other.sources
        for kind, names in other.skipped.items():
            self.skipped.setdefault(kind, []).extend(names)

    def skipped_counts(self) -> dict[str, int]:
        """Kind -> count: what the manifest records as `skipped_files`."""
        return {kind: len(names) for kind, names in sorted(self.skipped.items())}

    def log(self, path: Path) -> None:
        if self.skipped:
            first = [n for names in self.skipped.values() for n in names][:3]
            log.info(
                "%s: skipped %d operating-system files (%s), e.g. %s",
                path,
                sum(map(len, self.skipped.values())),
                ", ".join(f"{k}: {v}" for k, v in self.skipped_counts().items()),
                ", ".join(first),
            )


def discover_sources(path: str | Path) -> list[InputFile]:
    """All inputs under `path`: a zip, a CSV/ndjson file (gzip or not), or a folder of them
    ([`list_sources`][quickdraw.data.readers.list_sources] without the artefacts it skipped)."""
    return list_sources(path).sources


def list_sources(path: str | Path) -> Listing:
    """The inputs under `path` (a zip, an input file, or a folder of them, zips included, at any
    depth) and the operating-system artefacts skipped on the way (`__MACOSX/`, `._*`,
    `.DS_Store`, hidden files and folders...), logged. The one listing of input files, for the
    converter, evaluate and predict. A path named directly is read even if it looks like an artefact.
    """
    path = Path(path)
    if not path.exists():
        near = sorted(p.name for p in path.parent.iterdir()) if path.parent.is_dir() else []
        raise MissingPathError(
            f"source {path} does not exist"
            + (f"; {path.parent} holds: {', '.join(near[:20])}" if near else "")
        )
    if path.is_dir():
        listing = _list_folder(path)
    elif path.suffix.lower() == ".zip":
        listing = _list_zip(path)
    elif not _is_input(path.name):
        raise QuickDrawFormatError(
            f"{path}: unsupported file type (expected {', '.join(SUFFIXES)} or .zip)"
        )
    else:
        listing = Listing([InputFile(path)])
    listing.log(path)
    return listing


def _list_folder(root: Path) -> Listing:
    listing, files = Listing(), []
    # os.walk, not rglob: skipped folders (.git, __MACOSX) are not even descended into.
    for folder, dirs, names in os.walk(root):
        here = Path(folder)
        for d in sorted(dirs):
            kind = artefact_kind(d, folder=True)
            if kind:
                dirs.remove(d)
                listing.skip(kind, f"{(here / d).relative_to(root)}/")
        for name in names:
            kind = artefact_kind(name)
            if kind:
                listing.skip(kind, str((here / name).relative_to(root)))
            elif _is_input(name, allow_zip=True) and (here / name).is_file():
                files.append(here / name)
    for file in sorted(files):
        within = "" if file.parent == root else file.parent.relative_to(root).as_posix()
        listing.add(
            _list_zip(file, within)
            if file.suffix.lower() == ".zip"
            else Listing([InputFile(file, within=within)])
        )
    if not listing.sources:
        raise QuickDrawFormatError(
            f"{root} holds no {', '.join(SUFFIXES)} or .zip files{_skipped_note(listing)}"
        )
    return listing


def _list_zip(path: Path, within: str = "") -> Listing:
    listing = Listing()
    try:
        with zipfile.ZipFile(path) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
    except zipfile.BadZipFile as e:
        raise QuickDrawFormatError(f"{path} is not a valid zip archive ({e})") from e
    for info in sorted(infos, key=lambda i: i.filename):
        kind = artefact_in_path(info.filename)
        if kind:
            listing.skip(kind, f"{path.name}!{info.filename}")
        elif _is_input(info.filename):
            listing.sources.append(InputFile(path, info.filename, within))
        elif info.filename.lower().endswith(".zip"):  # its drawings would be silently left out
            raise QuickDrawFormatError(
                f"{path} holds the zip archive {info.filename!r}, and a zip inside a zip is not "
                f"read: extract {path.name} into a folder and use that folder as the source "
                "(zips in a folder are read)"
            )
    if not listing.sources:
        raise QuickDrawFormatError(
            f"{path} contains no {', '.join(SUFFIXES)} members{_skipped_note(listing)}"
        )
    return listing


def _skipped_note(listing: Listing) -> str:
    n = sum(map(len, listing.skipped.values()))
    return f" (skipped {n} operating-system files: {listing.skipped_counts()})" if n else ""


def _is_input(name: str, allow_zip: bool = False) -> bool:
    low = name.lower()
    return low.endswith(SUFFIXES) or (allow_zip and low.endswith(".zip"))


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


def parse_key_id(value) -> int:
    # int() would accept True and truncate 2.5 to 2 (a duplicate id, perhaps); ndjson may hold either.
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise BadRow("bad_key_id", repr(value))
    try:
        k = int(value.strip()) if isinstance(value, str) else int(value)
    except (TypeError, ValueError, OverflowError, AttributeError):
        raise BadRow("bad_key_id", f"{str(value)[:40]!r} is not an integer") from None
    if not 0 <= k <= INT64_MAX:
        raise BadRow("bad_key_id", f"{k} outside 0..2^63-1")
    return k


def parse_recognized(value) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("true", "1"):
            return True
        if low in ("false", "0"):
            return False
    return None


def parse_drawing(
    value, drawing_format: str = "auto", max_points: int = 65_535
) -> tuple[np.ndarray, list[int]]:
    """Validate one drawing (JSON text or parsed lists) into uint8 (P, 2) points and stroke lengths
    ([`parse_timed_drawing`][quickdraw.data.readers.parse_timed_drawing] without the times)."""
    return parse_timed_drawing(value, drawing_format, max_points)[:2]


def parse_timed_drawing(
    value, drawing_format: str = "auto", max_points: int = 65_535
) -> tuple[np.ndarray, list[int], np.ndarray | None]:
    """Validate one drawing into uint8 (P, 2) points, stroke lengths and (P,) float32 times.

    `drawing_format`: `simplified` wants integer 0-255 `[xs, ys]` strokes; `raw` simplifies any
    coordinates with Google's procedure; `auto` treats `[xs, ys, ts]` strokes as raw.
    Empty strokes are dropped; a drawing left with none is bad. A `ParsedDrawing` (binary and
    stroke-3 inputs, decoded and range-checked by their readers) is only checked for `max_points`.
    Times: ms since the drawing's first point, for raw drawings whose every stroke has `ts`
    (carried through the simplification, [`quickdraw.data.simplify.simplify_timed`][quickdraw.data.simplify.simplify_timed]); None
    otherwise. A `ts` list that is not one finite number per point is a bad row (`bad_times`).
    """
    if isinstance(value, ParsedDrawing):
        if len(value.points) > max_points:
            raise BadRow("too_many_points", f"more than {max_points} points")
        return value.points, value.lengths, None
    if isinstance(value, (str, bytes)):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError as e:
            raise BadRow("bad_json", str(e)[:80]) from None
    if not isinstance(value, list):
        raise BadRow("bad_structure", "drawing is not a list of strokes")
    raw = drawing_format == "raw"
    xs: list = []
    ys: list = []
    ts: list | None = []
    lens: list[int] = []
    for i, stroke in enumerate(value):
        if (
            not isinstance(stroke, list)
            or len(stroke) not in (2, 3)
            or not isinstance(stroke[0], list)
            or not isinstance(stroke[1], list)
        ):
            raise BadRow("bad_structure", f"stroke {i} is not [xs, ys] or [xs, ys, ts]")
        if len(stroke) == 3:
            if drawing_format == "simplified":
                raise BadRow(
                    "bad_structure", f"stroke {i} has timestamps but drawing_format=simplified"
                )
            raw = True
        sx, sy = stroke[0], stroke[1]
        if len(sx) != len(sy):
            raise BadRow("length_mismatch", f"stroke {i} has {len(sx)} x and {len(sy)} y values")
        if len(stroke) == 2:
            ts = None
        elif ts is not None and (not isinstance(stroke[2], list) or len(stroke[2]) != len(sx)):
            raise BadRow("bad_times", f"stroke {i}: ts is not a list of {len(sx)} times")
        if sx:
            xs += sx
            ys += sy
            if ts is not None:
                ts += stroke[2]
            lens.append(len(sx))
            if len(xs) > max_points:
                raise BadRow("too_many_points", f"more than {max_points} points")
    if not lens:
        raise BadRow("empty_drawing")
    _check_numbers(xs, "coordinate", "bad_coordinates", ys)
    try:
        arr = np.array((xs, ys), dtype=np.float64).T
    except (ValueError, TypeError, OverflowError):
        raise BadRow("bad_structure", "a coordinate is not a number") from None
    if not np.isfinite(arr).all():
        raise BadRow("bad_coordinates", "NaN or infinite coordinate")
    if raw:
        # Simplification scales the extent to 255: it must be a finite float, and 255 / extent too.
        with np.errstate(over="ignore"):
            extent = float(np.ptp(arr, axis=0).max())
            steps = np.hypot(*np.diff(arr, axis=0).T)  # hypot: no overflow on huge coordinates
        if not np.isfinite(extent) or (extent > 0 and not np.isfinite(255.0 / extent)):
            raise BadRow(
                "bad_coordinates", f"coordinates span {extent:g}: cannot be scaled to 0..255"
            )
        steps[np.cumsum(lens)[:-1] - 1] = 0  # no ink between strokes
        ink = float(steps.sum()) * (255.0 / extent if extent > 0 else 1.0)
        if ink > MAX_INK_PX:
            raise BadRow(
                "too_many_points",
                f"{ink:,.0f} px of ink in the 255 px frame; the limit is {MAX_INK_PX:,}",
            )
        times = _times(ts)
        cuts = np.cumsum(lens)[:-1]
        strokes, kept = simplify_timed(
            np.split(arr, cuts), None if times is None else np.split(times, cuts)
        )
        if not any(len(s) for s in strokes):
            raise BadRow("empty_drawing", "nothing left after simplification")
        lengths = [len(s) for s in strokes if len(s)]
        if kept is None:
            return np.concatenate(strokes), lengths, None
        return np.concatenate(strokes), lengths, np.concatenate(kept).astype(np.float32)
    if arr.min() < 0 or arr.max() > 255:
        raise BadRow(
            "out_of_range", f"coordinates span {arr.min():g}..{arr.max():g}, expected 0..255"
        )
    ints = arr.astype(np.uint8)
    if (ints != arr).any():
        raise BadRow(
            "not_integer", "simplified coordinates must be integers (use drawing_format=raw)"
        )
    return ints, lens, None


# JSON numbers as the parsers give them (numpy scalars for lists built from arrays). `bool` is an
# `int` and numpy turns "12" into 12.0, so both would pass as numbers unless refused by type.
_NUMBERS = (int, float, np.integer, np.floating)
_PLAIN = frozenset((int, float))


def _check_numbers(values: list, what: str, reason: str, more: list = ()) -> None:
    """Raise `BadRow(reason)` naming the first value of `values` + `more` that is not a JSON
    number (`true`, `"12"`, `null`, a list...). Types are collected in C (`map`), so a
    1000-point drawing costs a set of one or two types, not a Python loop (~2 us a drawing)."""
    types = set(map(type, values))
    types.update(map(type, more))
    if types <= _PLAIN or all(
        issubclass(t, _NUMBERS) and not issubclass(t, (bool, np.bool_)) for t in types
    ):
        return
    values = [*values, *more]
    bad = next(v for v in values if not isinstance(v, _NUMBERS) or isinstance(v, (bool, np.bool_)))
    raise BadRow(reason, f"a {what} is {excerpt(_json_text(bad), 40)}, not a JSON number")


def _json_text(value) -> str:
    """`value` as JSON text, as the file wrote it (`true`, `"12"`); repr where it has none."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return repr(value)


def _times(ts: list | None) -> np.ndarray | None:
    """Raw `ts` values as float64 ms since the drawing's first point (None stays None)."""
    if ts is None:
        return None
    _check_numbers(ts, "time", "bad_times")
    try:
        times = np.array(ts, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        raise BadRow("bad_times", "a time is not a number") from None
    if times.ndim != 1 or not np.isfinite(times).all():
        raise BadRow("bad_times", "a time is not a finite number")
    return times - times[0]
