"""One input file converted into a store's shards, and the settings that decide where its rows land.

[`convert_source`][quickdraw.data.convert_file.convert_source] is the unit of work of
[`quickdraw.data.conversion`][quickdraw.data.conversion] (one per input file, in parallel): it reads,
validates and splits the file's rows, writes them through
[`quickdraw.data.shards`][quickdraw.data.shards] and returns the file's receipt, with the stamp
([`source_stamp`][quickdraw.data.convert_file.source_stamp]) that later tells whether the file
has changed since.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from quickdraw.core.errors import SettingError
from quickdraw.data.duplicates import FILTERED, SeenKeys, check_policy
from quickdraw.data.formats.base import BadRow, InputFile, ParsedDrawing
from quickdraw.data.parsing import parse_key_id, parse_recognized, parse_timed_drawing
from quickdraw.data.readers import iter_records
from quickdraw.data.schema import SPLITS, assign_split
from quickdraw.data.shards import RowBuffer, ShardWriter

EXAMPLES_PER_REASON = 3
CHUNK_ROWS = 4096


@dataclass
class ConvertSettings:
    """Everything that decides which rows land where; a store remembers the settings it was built with."""

    val_fraction: float = 0.05
    test_fraction: float = 0.05
    split_seed: int = 0
    recognized_only: bool = False
    max_per_class: int | None = (
        None  # per class and input file (Kaggle/Google have one file per class)
    )
    drawing_format: str = "auto"  # auto | simplified | raw
    max_points: int = 65_535
    row_group_size: int = 1024
    shard_rows: int = 1_000_000
    max_bytes: int = 16 << 30  # decompressed bytes per input file; stops zip/gzip bombs
    classes: list[str] = field(default_factory=list)
    keep_source_split: bool = (
        False  # sketch-rnn .npz: keep its train/valid/test, not the key_id hash
    )
    # a key_id met again: drop (keep the first copy, warn) | keep | error; quickdraw.data.duplicates
    duplicates: str = "drop"

    def __post_init__(self) -> None:
        check_policy(self.duplicates)
        if not (
            self.val_fraction >= 0
            and self.test_fraction >= 0
            and self.val_fraction + self.test_fraction < 1
        ):
            raise SettingError(
                f"need 0 <= val_fraction, test_fraction and their sum < 1, got {self.val_fraction}, {self.test_fraction}"
            )
        if self.drawing_format not in ("auto", "simplified", "raw"):
            raise SettingError(
                f"drawing_format must be auto, simplified or raw, not {self.drawing_format!r}"
            )
        if not 1 <= self.max_points <= 65_535:
            raise SettingError(
                f"max_points must be 1-65535 (the store keeps stroke lengths as uint16), got {self.max_points}"
            )
        if self.row_group_size < 1 or self.shard_rows < self.row_group_size:
            raise SettingError("need 1 <= row_group_size <= shard_rows")


def convert_source(
    source: InputFile,
    store: Path,
    class_index: dict[str, int],
    settings: ConvertSettings,
    progress=None,
) -> dict:
    """Convert one input file into shards of `store`; returns its receipt (counts, bad rows,
    shards, their checks, the file's stamp). Rows are validated, split by hashing key_id and
    buffered per (split, class); full buffers become class-pure row groups."""
    stamp = source_stamp(source)  # before reading: a change made meanwhile shows on the next run
    writers = {s: ShardWriter(store, s, source.id, settings.shard_rows) for s in SPLITS}
    buffers: dict[tuple[int, int], RowBuffer] = defaultdict(RowBuffer)
    counts = {s: [0] * len(class_index) for s in SPLITS}
    bad: Counter = Counter()
    filtered: Counter = Counter()
    examples: list[dict] = []
    kept_per_class: Counter = Counter()
    rows_read = 0
    pending: list = []  # validated rows waiting for their split
    # Under keep, every copy is written and find_duplicates counts them all from the shards.
    classes = sorted(class_index, key=class_index.get)
    keep = settings.duplicates == "keep"
    seen = None if keep else SeenKeys(source.name, settings.duplicates, classes)

    def reject(reason: str, line: int | None, detail: str) -> None:
        bad[reason] += 1
        if bad[reason] <= EXAMPLES_PER_REASON:
            examples.append(
                {"file": source.name, "line": line, "reason": reason, "detail": detail[:200]}
            )

    def flush(key: tuple[int, int]) -> None:
        buf = buffers.pop(key)
        writers[SPLITS[key[0]]].write(buf.table(key[1]))

    def route() -> None:
        splits = assign_split(
            np.fromiter((r[0] for r in pending), np.int64, len(pending)),
            settings.val_fraction,
            settings.test_fraction,
            settings.split_seed,
        )
        for split, (key_id, label, pts, lens, times, cc, rec, ts, own) in zip(
            splits.tolist(), pending, strict=True
        ):
            split = SPLITS.index(own) if own else split
            buf = buffers[(split, label)]
            buf.key_id.append(key_id)
            buf.points.append(pts)
            buf.lens.append(lens)
            buf.times.append(times)
            buf.countrycode.append(cc)
            buf.recognized.append(rec)
            buf.timestamp.append(ts)
            counts[SPLITS[split]][label] += 1
            if len(buf) >= settings.row_group_size:
                flush((split, label))
        pending.clear()

    for record in iter_records(source, settings.max_bytes):
        rows_read += 1
        if isinstance(record, BadRow):
            reject(record.reason, record.line, record.detail)
            continue
        line, key_id, word, cc, rec, ts, drawing = record
        try:
            if not word:
                raise BadRow("missing_word", "word is empty")
            # ndjson may hold any JSON value here: only strings can name a class.
            label = class_index.get(word) if isinstance(word, str) else None
            if label is None:
                raise BadRow(
                    "unknown_word",
                    f"{str(word)[:60]!r} is not one of the {len(class_index)} classes",
                )
            key_id = parse_key_id(key_id)
            recognized = parse_recognized(rec)
            if settings.recognized_only and recognized is not True:
                filtered["not_recognized"] += 1
                continue
            if (
                settings.max_per_class is not None
                and kept_per_class[label] >= settings.max_per_class
            ):
                filtered["over_max_per_class"] += 1
                continue
            pts, lens, times = parse_timed_drawing(
                drawing, settings.drawing_format, settings.max_points
            )
        except BadRow as e:
            reject(e.reason, line, e.detail)
            continue
        if seen is not None and seen.repeats(key_id, label, line, pts, lens):
            filtered[FILTERED] += 1
            continue
        kept_per_class[label] += 1
        own = drawing.split if isinstance(drawing, ParsedDrawing) else None
        pending.append(
            (
                key_id,
                label,
                pts,
                lens,
                times,
                cc if isinstance(cc, str) and cc else None,
                recognized,
                ts,
            )
            + (own if settings.keep_source_split else None,)
        )
        if len(pending) >= CHUNK_ROWS:
            route()
        if progress is not None and rows_read % CHUNK_ROWS == 0:
            progress.put(CHUNK_ROWS)
    if pending:
        route()
    if progress is not None:
        progress.put(rows_read % CHUNK_ROWS)
    for key in sorted(buffers):
        flush(key)
    for w in writers.values():
        w.close()
    return {
        "id": source.id,
        "name": source.name,
        "bytes": source.size,
        "rows_read": rows_read,
        "rows_kept": sum(sum(c) for c in counts.values()),
        "counts": counts,
        "bad_rows": dict(bad),
        "filtered": dict(filtered),
        "bad_examples": examples,
        "shards": {s: w.done for s, w in writers.items()},
        "checks": {p: c for w in writers.values() for p, c in w.checks.items()},
        "stamp": stamp,
        "duplicates": seen.receipt() if seen is not None else {},
    }


def source_stamp(source: InputFile) -> dict:
    """What tells a changed input file without reading it: size, modification time and status
    change time on disk (`cp -p`, `rsync -t` and `touch -r` put back an old modification
    time, so another file of the same size would look unchanged; the status change time cannot be
    set back); a zip member's compressed and full sizes and CRC-32 (a content checksum the archive
    keeps)."""
    if source.member is None:
        st = source.path.stat()
        return {"bytes": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns}
    info = source.member_info()
    return {"bytes": info.compress_size, "size": info.file_size, "crc32": info.CRC}


def same_stamp(recorded: dict, source: InputFile) -> bool:
    """Whether `source` is as `recorded` (a receipt or the manifest's entry) saw it; an entry
    from before stamps were recorded has only its size to go by, one from before status change
    times were, its size and modification time."""
    stamp = source_stamp(source)
    if recorded.get("stamp") is None:
        return recorded.get("bytes") == stamp["bytes"]
    return all(stamp.get(key) == value for key, value in recorded["stamp"].items())
