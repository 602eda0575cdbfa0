"""Converted rows into Parquet shards: class-pure row groups, each part under its final name only
when complete.

A [`RowBuffer`][quickdraw.data.shards.RowBuffer] gathers one (split, class)'s validated rows and
turns them into an Arrow table of the store's schema; a
[`ShardWriter`][quickdraw.data.shards.ShardWriter] appends such tables to one input file's parts
of one split, written through [`atomic_path`][quickdraw.core.files.atomic_path] so that an
interrupted or failed conversion leaves no half shard.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from quickdraw.core.files import atomic_path
from quickdraw.data.schema import SCHEMA, TIMED_SCHEMA, TIMED_WRITE_OPTIONS, WRITE_OPTIONS
from quickdraw.data.store import shard_check
from quickdraw.data.strokes import StrokeBatch


class ShardWriter:
    """Writes one source's rows of one split into parts; each part appears under its final name
    only when closed."""

    def __init__(self, store: Path, split: str, source_id: str, shard_rows: int):
        self.dir = store / split
        self.dir.mkdir(parents=True, exist_ok=True)
        self.split, self.source_id, self.shard_rows = split, source_id, shard_rows
        self.part, self.rows, self.writer, self.tmp = 0, 0, None, None
        self.pending = ExitStack()  # the open part's atomic_path: renamed on close, else removed
        self.done: list[str] = []
        self.checks: dict[str, dict] = {}  # finished part -> its shard_check, for the receipt

    def write(self, table: pa.Table) -> None:
        """Append `table` (`SCHEMA`, or `TIMED_SCHEMA` when it has times); a part holds
        times once a table with times reaches it (the part before is closed, untimed)."""
        timed = "times" in table.column_names
        if self.writer is not None and timed and self.writer.schema != TIMED_SCHEMA:
            self.close()
        if self.writer is None:
            self.tmp = self.pending.enter_context(atomic_path(self._final()))
            schema, options = (
                (TIMED_SCHEMA, TIMED_WRITE_OPTIONS) if timed else (SCHEMA, WRITE_OPTIONS)
            )
            with self._removed_on_error():
                self.writer = pq.ParquetWriter(self.tmp, schema, **options)
        if self.writer.schema == TIMED_SCHEMA and not timed:
            table = table.append_column("times", pa.nulls(len(table), pa.binary()))
        with self._removed_on_error():
            self.writer.write_table(table, row_group_size=len(table))
        self.rows += len(table)
        if self.rows >= self.shard_rows:
            self.close()

    def close(self) -> None:
        if self.writer is None:
            return
        final = self._final()
        with self._removed_on_error():
            self.writer.close()
            check = shard_check(self.tmp)  # of the bytes as written, before anything can touch them
            self.writer = None
            self.pending.close()  # renamed to `final`
        self.done.append(f"{self.split}/{final.name}")
        self.checks[self.done[-1]] = check
        self.part, self.rows = self.part + 1, 0

    def _final(self) -> Path:
        return self.dir / f"{self.source_id}-{self.part:04d}.parquet"

    @contextmanager
    def _removed_on_error(self) -> Iterator[None]:
        """A failed write (a full disk: [`DiskFullError`][quickdraw.core.files.DiskFullError] naming the part) leaves no
        temporary file and no open writer behind."""
        try:
            yield
        except BaseException:
            self._drop_writer()
            if not self.pending.__exit__(*sys.exc_info()):  # atomic_path removes the part
                raise

    def _drop_writer(self) -> None:
        """No writer whose `__del__` retries the failed close (pyarrow prints that failure as an
        "Exception ignored" traceback)."""
        if self.writer is not None:
            with suppress(OSError, pa.ArrowException):  # closing writes to a file we drop
                self.writer.close()
            self.writer.is_open = False
        self.writer = None

    def __del__(self) -> None:
        # A part left open when another split's write failed (a full disk) is dropped quietly.
        if getattr(self, "writer", None) is not None:
            self.writer.is_open = False
            if self.tmp is not None:
                self.tmp.unlink(missing_ok=True)


@dataclass
class RowBuffer:
    """One (split, class)'s validated rows, column by column, until they become a row group."""

    key_id: list = field(default_factory=list)
    points: list = field(default_factory=list)
    lens: list = field(default_factory=list)
    countrycode: list = field(default_factory=list)
    recognized: list = field(default_factory=list)
    timestamp: list = field(default_factory=list)
    times: list = field(default_factory=list)  # (P,) float32 per drawing, or None

    def __len__(self) -> int:
        return len(self.key_id)

    def table(self, label: int) -> pa.Table:
        n_strokes = np.fromiter((len(x) for x in self.lens), np.int64, len(self.lens))
        lens = np.concatenate([np.asarray(x, np.int64) for x in self.lens])
        batch = StrokeBatch(
            np.concatenate(self.points),
            np.concatenate([[0], np.cumsum(lens)]),
            np.concatenate([[0], np.cumsum(n_strokes)]),
        )
        points, stroke_lengths = batch.to_arrow()
        table = pa.Table.from_arrays(
            [
                pa.array(self.key_id, pa.int64()),
                pa.array(np.full(len(self), label, np.int16)),
                points,
                stroke_lengths,
                pa.array(self.countrycode, pa.string()),
                pa.array(self.recognized, pa.bool_()),
                _parse_timestamps(self.timestamp),
            ],
            schema=SCHEMA,
        )
        if all(t is None for t in self.times):
            return table
        return table.append_column("times", _times_column(batch, self.times))


def _times_column(batch: StrokeBatch, times: list) -> pa.BinaryArray:
    """The `times` column of `batch`'s drawings, null for those whose entry in `times` is None."""
    has = np.array([t is not None for t in times])
    timed = batch.select(np.flatnonzero(has))
    timed.times = np.concatenate([t for t in times if t is not None]).astype(np.float32)
    column = timed.times_to_arrow()
    if has.all():
        return column
    slots = np.cumsum(has) - 1
    return pa.array(
        [column[int(slots[i])].as_py() if h else None for i, h in enumerate(has)], pa.binary()
    )


def _parse_timestamps(values: list) -> pa.Array:
    """Quick, Draw! timestamps ('2017-03-11 14:47:44.05242', ndjson adds ' UTC'); unparsable ones become null."""
    strings = pa.array([v if isinstance(v, str) else None for v in values], pa.string())
    strings = pc.replace_substring_regex(strings, r"\s*UTC$", "")
    try:
        return pc.cast(strings, pa.timestamp("us")).cast(pa.timestamp("us", tz="UTC"))
    except pa.ArrowInvalid:
        out = []
        for s in strings:
            try:
                out.append(pc.cast(pa.array([s.as_py()]), pa.timestamp("us"))[0].as_py())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                out.append(None)
        return pa.array(out, pa.timestamp("us")).cast(pa.timestamp("us", tz="UTC"))
