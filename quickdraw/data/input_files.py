"""Input files of evaluate and predict streamed in batches of drawings, with every unreadable row accounted for.

Any layout the converter reads ([`quickdraw.data.readers`][quickdraw.data.readers], raw ndjson with times included)
comes out as [`InputBatch`][quickdraw.data.input_files.InputBatch] es of consecutive rows with a key_id; a row whose drawing cannot
be read keeps its place (it still gets a guess, or an error) and is listed in `InputStats`.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from quickdraw.core.errors import InputError
from quickdraw.core.files import atomic_open
from quickdraw.data.formats.base import BadRow
from quickdraw.data.listing import discover_sources
from quickdraw.data.parsing import parse_key_id, parse_timed_drawing
from quickdraw.data.readers import iter_records
from quickdraw.data.strokes import StrokeBatch

log = logging.getLogger(__name__)


@dataclass
class InputBatch:
    """Consecutive input rows that have a key_id, in input order.

    `key_ids`, `words`, `lines` and `readable` have one entry per row (B); `strokes`
    holds the readable rows only (`readable.sum()` drawings), in the same order, with
    `strokes.times` filled when every one of them has times (raw inputs). `lines`
    says where each row is in its file: a line number (CSV, ndjson), a record number (.bin) or
    a position such as `test[12]` (sketch-rnn .npz).
    """

    key_ids: np.ndarray
    words: list[str | None]
    strokes: StrokeBatch
    lines: list[int | str | None]
    readable: np.ndarray


@dataclass
class Unreadable:
    """A row with a key_id whose drawing cannot be read: it still gets a guess (or an error)."""

    source: str
    line: int | str | None
    key_id: int
    reason: str
    detail: str


@dataclass
class InputStats:
    rows: int = 0
    bad: Counter = field(default_factory=Counter)
    unreadable: list[Unreadable] = field(default_factory=list)
    first_seen: dict[int, tuple[str, int | None]] = field(default_factory=dict, repr=False)


def iter_input(
    path: str | Path, batch_size: int, stats: InputStats, max_bytes: int = 16 << 30
) -> Iterator[InputBatch]:
    """Stream every row with a key_id (any format the converter reads, raw ndjson included) in batches.

    A row whose drawing cannot be read stays in its batch with `readable` False and is listed
    in `stats.unreadable` with its line; a row without a usable key_id cannot be answered and
    is only counted (`stats.bad`) and logged. Raises ValueError naming both lines at a key_id
    met a second time: Kaggle refuses a submission that lists a key_id twice, and an evaluation
    would score that drawing twice.
    """
    rows: list[tuple] = []  # (key_id, word, line, (points, lengths, times) or None)

    def flush() -> InputBatch:
        batch = StrokeBatch.from_parsed([r[3] for r in rows if r[3] is not None])
        out = InputBatch(
            np.array([r[0] for r in rows], np.int64),
            [r[1] for r in rows],
            batch,
            [r[2] for r in rows],
            np.array([r[3] is not None for r in rows], bool),
        )
        rows.clear()
        return out

    for source in discover_sources(path):
        for record in iter_records(source, max_bytes, require_word=False):
            stats.rows += 1
            line = record.line if isinstance(record, BadRow) else record[0]
            try:
                if isinstance(record, BadRow):
                    raise record
                key_id = parse_key_id(record[1])
            except BadRow as e:
                _count_bad(stats, source.name, line, e)
                continue
            word = (
                record[2] if isinstance(record[2], str) and record[2] else None
            )  # ndjson: any JSON value
            try:
                drawing = parse_timed_drawing(record[6])  # times kept for raw inputs
            except BadRow as e:
                _count_bad(stats, source.name, line, e)
                stats.unreadable.append(Unreadable(source.name, line, key_id, e.reason, e.detail))
                drawing = None
            first = stats.first_seen.setdefault(key_id, (source.name, line))
            if first != (source.name, line):
                raise InputError(
                    f"{source.name} line {line}: key_id {key_id} again (first at {first[0]} line "
                    f"{first[1]}); each drawing must appear once: remove the repeated rows"
                )
            rows.append((key_id, word, line, drawing))
            if len(rows) >= batch_size:
                yield flush()
    if rows:
        yield flush()


def _count_bad(stats: InputStats, source: str, line: int | None, e: BadRow) -> None:
    stats.bad[e.reason] += 1
    if stats.bad[e.reason] <= 3:
        log.warning("%s line %s: %s %s", source, line, e.reason, e.detail)


def write_unreadable(path: Path, unreadable: list[Unreadable], guess: str = "") -> None:
    """The side file listing unreadable rows: source, line, key_id, reason, detail (and the guess given)."""
    with atomic_open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["source", "line", "key_id", "reason", "detail"] + (["guess"] if guess else []))
        for u in unreadable:
            w.writerow(
                [u.source, u.line, u.key_id, u.reason, u.detail] + ([guess] if guess else [])
            )
