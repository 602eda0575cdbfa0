"""Conversion of Quick, Draw! inputs into a Parquet store: streaming, parallel per file, resumable.

Each input file is one unit of work. Its rows are validated, split by hashing key_id and buffered
per (split, class); full buffers become class-pure row groups. A file's shards are written under
temporary names and renamed when complete, and a receipt in `_sources/` marks the file done;
an interrupted run therefore redoes only unfinished files (after deleting their stray shards),
and a finished store is left alone.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import shutil
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from quickdraw.core.errors import InputError, SettingError
from quickdraw.core.files import commit, reporting_full_disk, temporary_path, write_json
from quickdraw.core.outputs import refuse_overwrite
from quickdraw.data.duplicates import FILTERED, Duplicates, SeenKeys, check_policy, find_duplicates
from quickdraw.data.formats.base import BadRow, InputFile, ParsedDrawing, QuickDrawFormatError
from quickdraw.data.origin import combined_origin
from quickdraw.data.readers import (
    iter_records,
    list_sources,
    parse_key_id,
    parse_recognized,
    parse_timed_drawing,
)
from quickdraw.data.schema import (
    MANIFEST,
    READABLE_VERSIONS,
    SCHEMA,
    SCHEMA_VERSION,
    SPLITS,
    TIMED_SCHEMA,
    TIMED_WRITE_OPTIONS,
    WRITE_OPTIONS,
    Manifest,
    assign_split,
)
from quickdraw.data.store import shard_check
from quickdraw.data.strokes import StrokeBatch

log = logging.getLogger(__name__)
SOURCES_DIR = "_sources"
SETTINGS_FILE = "_settings.json"
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


class _ShardWriter:
    """Writes one source's rows of one split into parts; each part appears under its final name only when closed."""

    def __init__(self, store: Path, split: str, source_id: str, shard_rows: int):
        self.dir = store / split
        self.dir.mkdir(parents=True, exist_ok=True)
        self.split, self.source_id, self.shard_rows = split, source_id, shard_rows
        self.part, self.rows, self.writer, self.tmp = 0, 0, None, None
        self.done: list[str] = []
        self.checks: dict[str, dict] = {}  # finished part -> its shard_check, for the receipt

    def write(self, table: pa.Table) -> None:
        """Append `table` (`SCHEMA`, or `TIMED_SCHEMA` when it has times); a part holds
        times once a table with times reaches it (the part before is closed, untimed)."""
        timed = "times" in table.column_names
        if self.writer is not None and timed and self.writer.schema != TIMED_SCHEMA:
            self.close()
        if self.writer is None:
            self.tmp = temporary_path(self._final())
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
            commit(self.tmp, final)
        self.done.append(f"{self.split}/{final.name}")
        self.checks[self.done[-1]] = check
        self.writer, self.part, self.rows = None, self.part + 1, 0

    def _final(self) -> Path:
        return self.dir / f"{self.source_id}-{self.part:04d}.parquet"

    @contextmanager
    def _removed_on_error(self) -> Iterator[None]:
        """A failed write (a full disk: [`DiskFullError`][quickdraw.core.files.DiskFullError] naming the part) leaves no
        temporary file and no open writer behind."""
        try:
            with reporting_full_disk(self._final()):
                yield
        except BaseException:
            self._drop()
            raise

    def _drop(self) -> None:
        """Drop the open part: no temporary file, and no writer whose `__del__` retries the failed
        close (pyarrow prints that failure as an "Exception ignored" traceback)."""
        if self.writer is not None:
            with suppress(OSError, pa.ArrowException):  # closing writes to a file we drop
                self.writer.close()
            self.writer.is_open = False
        self.writer = None
        if self.tmp is not None:
            self.tmp.unlink(missing_ok=True)

    def __del__(self) -> None:
        # A part left open when another split's write failed (a full disk) is dropped quietly.
        if getattr(self, "writer", None) is not None:
            self.writer.is_open = False
            if self.tmp is not None:
                self.tmp.unlink(missing_ok=True)


@dataclass
class _Buffer:
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


def convert_source(
    source: InputFile,
    store: Path,
    class_index: dict[str, int],
    settings: ConvertSettings,
    progress=None,
) -> dict:
    """Convert one input file; returns its receipt (counts, bad rows, shards)."""
    stamp = source_stamp(source)  # before reading: a change made meanwhile shows on the next run
    writers = {s: _ShardWriter(store, s, source.id, settings.shard_rows) for s in SPLITS}
    buffers: dict[tuple[int, int], _Buffer] = defaultdict(_Buffer)
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


_progress_queue = None


class _BarQueue:
    """The progress queue's interface over a tqdm bar, for in-process conversion."""

    def __init__(self, bar):
        self.bar = bar

    def put(self, n: int) -> None:
        self.bar.update(n)


def _init_worker(queue) -> None:
    global _progress_queue
    _progress_queue = queue


def _work(args) -> dict:
    source, store, class_index, settings = args
    try:
        receipt = convert_source(source, store, class_index, settings, _progress_queue)
        write_json(store / SOURCES_DIR / f"{source.id}.json", receipt)
    except BaseException:
        # Without its receipt a file's finished parts are converted again next time: remove them
        # now, with any temporary file, so that a full disk gets its space back.
        _remove_stray_shards(store, source.id)
        raise
    return receipt


def infer_classes(sources: Sequence[InputFile], max_bytes: int) -> list[str]:
    """Class names from file names (Kaggle's and Google's one-file-per-class layouts), checked against
    each file's first row; files that hold other words are scanned for every word they contain."""
    words: set[str] = set()
    for source in sources:
        records = (r for r in iter_records(source, max_bytes) if not isinstance(r, BadRow))
        first = next(records, None)
        if first is None:
            continue
        if first[2] == source.stem:
            words.add(source.stem)
            continue
        log.info(
            "%s: first word %r differs from the file name; scanning all its words",
            source.name,
            first[2],
        )
        words.update(r[2] for r in [first, *records] if isinstance(r[2], str) and r[2])
    if not words:
        raise QuickDrawFormatError(
            "no class names found in the inputs (no file has a readable row with a word)"
        )
    return sorted(words)


def convert(
    source: str | Path,
    store: str | Path,
    settings: ConvertSettings | None = None,
    workers: int | None = None,
    overwrite: bool = False,
    verify: bool = False,
    progress: bool = True,
) -> Manifest:
    """Convert `source` (zip, file or folder) into the Parquet store `store`; returns its manifest."""
    settings = settings or ConvertSettings()
    store = Path(store)
    # Before overwrite=true deletes the store: it must not be, hold or lie inside the source.
    refuse_overwrite({}, {"source": source}, "Convert into a new folder.", {"store": store})
    if overwrite and store.exists():
        shutil.rmtree(store)
    listing = list_sources(source)  # OS artefacts (._*, .DS_Store) skipped and counted
    sources = listing.sources
    # Before any work: a marker that is not the generator's stops the conversion here.
    origin = combined_origin(s.origin for s in sources) or ""
    if not settings.classes:
        settings.classes = infer_classes(sources, settings.max_bytes)
    settings.classes = sorted(set(settings.classes))
    _check_settings(store, settings)
    _check_same_source(store, sources)
    if verify:
        _verify(store, sources)
    receipts = _load_receipts(store, sources)
    todo = [s for s in sources if s.id not in receipts]
    manifest_path = store / "manifest.json"
    if not todo and manifest_path.exists():
        log.info("%s is up to date (%d input files already converted)", store, len(sources))
        manifest = Manifest.load(store)
        if not manifest.origin:  # converted before manifests recorded it: add it, nothing else
            manifest.origin = origin
            manifest.save(store)
        if manifest.duplicates.get("policy") != settings.duplicates:
            # Built before duplicates were looked for, or drop <-> error (the same shards).
            found = find_duplicates(store, sources, receipts, settings.classes, settings.duplicates)
            manifest = _build_manifest(sources, receipts, settings, manifest.origin, found)
            manifest.source = _resolved(source)
            manifest.skipped_files = listing.skipped_counts()
            manifest.save(store)
        return manifest
    for s in todo:
        _remove_stray_shards(store, s.id)
    class_index = {c: i for i, c in enumerate(settings.classes)}
    t0 = time.perf_counter()
    jobs = [(s, store, class_index, settings) for s in todo]
    n_workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    bar = tqdm(
        total=None,
        unit=" rows",
        unit_scale=True,
        desc=f"convert {len(todo)} files",
        disable=not progress,
        mininterval=1.0,
    )
    try:
        if n_workers == 1:
            _init_worker(_BarQueue(bar))
            for job in jobs:
                receipts[job[0].id] = _work(job)
                bar.set_postfix(files=f"{len(receipts)}/{len(sources)}", refresh=False)
        else:
            _run_parallel(jobs, n_workers, receipts, bar, len(sources))
    finally:
        bar.close()
    found = find_duplicates(store, sources, receipts, settings.classes, settings.duplicates)
    manifest = _build_manifest(sources, receipts, settings, origin, found)
    manifest.source = _resolved(source)  # what training checks the store against at each start
    manifest.skipped_files = listing.skipped_counts()
    manifest.save(store)
    _report(manifest, receipts, time.perf_counter() - t0)
    return manifest


def _resolved(source: str | Path) -> str:
    return str(Path(source).expanduser().resolve())


def _run_parallel(jobs, n_workers: int, receipts: dict, bar, n_sources: int) -> None:
    # A fork server preloading only this module: workers start clean (no torch threads or locks inherited)
    # and fast (spawn would re-import the caller's __main__, e.g. all of Lightning for quickdraw.train).
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload([__name__])
    else:
        ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    stop = threading.Event()

    def pump() -> None:
        while not stop.is_set() or not queue.empty():
            try:
                bar.update(queue.get(timeout=0.2))
            except Exception:  # queue.Empty; the pool may also have gone away
                continue

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    try:
        with ProcessPoolExecutor(
            n_workers, mp_context=ctx, initializer=_init_worker, initargs=(queue,)
        ) as pool:
            try:
                for receipt in pool.map(_work, jobs):
                    receipts[receipt["id"]] = receipt
                    bar.set_postfix(files=f"{len(receipts)}/{n_sources}", refresh=False)
            except BaseException:
                # One failed file (a full disk) stops the others not yet started: one error,
                # not one per file.
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    finally:
        stop.set()
        thread.join()


def _check_settings(store: Path, settings: ConvertSettings) -> None:
    path = store / SOURCES_DIR / SETTINGS_FILE
    wanted = asdict(settings)
    if path.exists():
        have = json.loads(path.read_text())
        # A setting added after the store was built counts as its default.
        default = asdict(ConvertSettings())
        diff = {
            k: (have.get(k), v)
            for k, v in wanted.items()
            if _shapes_shards(k, have.get(k, default[k])) != _shapes_shards(k, v)
        }
        if diff:
            shown = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in list(diff.items())[:5])
            raise SettingError(
                f"{store} was built with other settings ({shown}); use a new store folder or overwrite=true"
            )
    else:
        write_json(path, wanted)


def _shapes_shards(key: str, value):
    """What a setting's value changes in the shards: duplicates=drop and error write the same
    (error refuses where drop leaves a copy out), so a store may switch between them."""
    return value == "keep" if key == "duplicates" else value


def _check_same_source(store: Path, sources: Sequence[InputFile]) -> None:
    """A store holds one source's files: converting another into it would leave the first one's
    shards on disk but out of the manifest (their rows silently gone from training)."""
    ids = {s.id for s in sources}
    others = sorted(
        p
        for p in (store / SOURCES_DIR).glob("*.json")
        if p.name != SETTINGS_FILE and p.stem not in ids
    )
    if others:
        try:
            name = json.loads(others[0].read_text())["name"]
        except (OSError, ValueError, KeyError, TypeError):
            name = others[0].stem
        raise InputError(
            f"{store} holds {len(others)} converted files that the source given does not have "
            f"(e.g. {name}): removed from it since, or another source's. Convert into a new store "
            f"folder, give the source the store was made from, or pass overwrite=true to rebuild it"
        )


def _load_receipts(store: Path, sources: Sequence[InputFile]) -> dict[str, dict]:
    """Receipts of the files converted already and unchanged since (the others are converted again)."""
    out = {}
    for s in sources:
        path = store / SOURCES_DIR / f"{s.id}.json"
        if path.exists():
            receipt = json.loads(path.read_text())
            if not same_stamp(receipt, s):
                log.info("%s changed since it was converted: converting it again", s.name)
                continue
            if all((store / p).exists() for shards in receipt["shards"].values() for p in shards):
                out[s.id] = receipt
    return out


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


def _verify(store: Path, sources: Sequence[InputFile]) -> None:
    """Check every finished file's shards against the SHA-256 its receipt recorded; drop the
    receipt of any file whose shards differ in any byte, or were written without checksums."""
    damaged = 0
    for s in sources:
        path = store / SOURCES_DIR / f"{s.id}.json"
        if not path.exists():
            continue
        try:
            receipt = json.loads(path.read_text())
            rows = 0
            for shards in receipt["shards"].values():
                for rel in shards:
                    rows += _verified_rows(store / rel, receipt.get("checks", {}).get(rel))
            if rows != receipt["rows_kept"]:
                raise ValueError(f"{rows} rows in shards, {receipt['rows_kept']} in the receipt")
        except (OSError, ValueError, KeyError, TypeError, pa.ArrowException) as e:
            log.warning("%s: damaged shards or receipt (%s); converting it again", s.name, e)
            path.unlink()
            damaged += 1
    # The manifest is derived from the receipts: rebuild it (it may be truncated or another store's),
    # unless it is another schema version's, whose shards this version cannot vouch for.
    try:
        version = json.loads((store / MANIFEST).read_text()).get("schema_version")
    except (OSError, ValueError, AttributeError):
        version = SCHEMA_VERSION
    if version in READABLE_VERSIONS:
        (store / MANIFEST).unlink(missing_ok=True)
    log.info("verify: %d of %d input files need converting again", damaged, len(sources))


def _verified_rows(shard: Path, check: dict | None) -> int:
    """Rows of `shard`, once its bytes are what the converter wrote (ValueError otherwise)."""
    if check is None:
        raise ValueError(f"{shard} has no checksum (converted by an older quickdraw)")
    try:
        found = shard_check(shard)
    except ValueError as e:  # no footer to be found
        raise ValueError(f"{shard} is damaged ({e})") from e
    for key in ("bytes", "sha256"):
        if found[key] != check[key]:
            raise ValueError(f"{shard} is damaged: its {key} differs from when it was converted")
    return pq.read_metadata(shard).num_rows


def _remove_stray_shards(store: Path, source_id: str) -> None:
    for split in SPLITS:
        d = store / split
        if d.is_dir():
            for p in list(d.glob(f"{source_id}-*.parquet")) + list(d.glob(f".{source_id}-*.tmp")):
                p.unlink()


def _build_manifest(
    sources: Sequence[InputFile],
    receipts: dict,
    settings: ConvertSettings,
    origin: str,
    duplicates: Duplicates,
) -> Manifest:
    """The receipts summed, less the later copies of key_ids that `duplicates` leaves out."""
    n = len(settings.classes)
    counts = {s: [0] * n for s in SPLITS}
    bad: Counter = Counter()
    filtered: Counter = Counter(
        {FILTERED: sum(duplicates.dropped_by_file.values())} if duplicates.dropped else {}
    )
    shards: dict[str, list[str]] = {s: [] for s in SPLITS}
    for src in sources:
        r = receipts[src.id]
        for s in SPLITS:
            counts[s] = [a + b for a, b in zip(counts[s], r["counts"][s], strict=True)]
            shards[s] += r["shards"][s]
        bad.update(r["bad_rows"])
        filtered.update(r["filtered"])
    for s, dropped in duplicates.dropped_counts.items():
        counts[s] = [a - b for a, b in zip(counts[s], dropped, strict=True)]
    return Manifest(
        classes=list(settings.classes),
        counts=counts,
        bad_rows=dict(sorted(bad.items())),
        filtered=dict(sorted(filtered.items())),
        sources=[_source_entry(receipts[s.id], duplicates) for s in sources],
        shards=shards,
        settings=asdict(settings) | {"classes": len(settings.classes)},
        bad_examples=[e for s in sources for e in receipts[s.id]["bad_examples"]][:20],
        origin=origin,
        duplicates=duplicates.record(),
        shard_checks={p: c for s in sources for p, c in receipts[s.id].get("checks", {}).items()},
    )


def _source_entry(receipt: dict, duplicates: Duplicates) -> dict:
    """A file's line in the manifest: rows kept once duplicates are left out, and its repeats."""
    entry = {k: receipt[k] for k in ("name", "bytes", "rows_read", "rows_kept")}
    entry |= {"id": receipt["id"], "stamp": receipt.get("stamp")}  # to tell a changed file
    entry["rows_kept"] -= duplicates.dropped_by_file.get(entry["name"], 0)
    return entry | {"duplicates": duplicates.by_file.get(entry["name"], 0)}


def _report(manifest: Manifest, receipts: dict, seconds: float) -> None:
    kept = sum(manifest.rows.values())
    read = sum(s["rows_read"] for s in manifest.sources)
    log.info(
        "%d rows read, %d kept in %d classes (%s) in %.1f s (%.0f rows/s)",
        read,
        kept,
        len(manifest.classes),
        ", ".join(f"{k} {v}" for k, v in manifest.rows.items()),
        seconds,
        read / max(seconds, 1e-9),
    )
    _warn_empty_splits(manifest)
    if manifest.bad_rows:
        log.warning(
            "bad rows skipped: %s", ", ".join(f"{k} {v}" for k, v in manifest.bad_rows.items())
        )
        for e in manifest.bad_examples[:10]:
            log.warning("  %s line %s: %s %s", e["file"], e["line"], e["reason"], e["detail"])
    if manifest.filtered:
        log.info("rows filtered out on purpose: %s", manifest.filtered)


def _warn_empty_splits(manifest: Manifest) -> None:
    """A class with rows but none in a split (a small class, or a fraction of 0) is said aloud:
    training then has no validation or no test drawings of it."""
    fractions = {s: manifest.settings.get(f"{s}_fraction") for s in SPLITS}
    for split, counts in manifest.counts.items():
        empty = [c for c, n in zip(manifest.classes, counts, strict=True) if n == 0]
        if empty and fractions.get(split) != 0:
            log.warning(
                "%d of %d classes have no %s drawings (e.g. %s); raise settings.%s_fraction "
                "or convert more drawings of them",
                len(empty),
                len(manifest.classes),
                split,
                ", ".join(map(repr, empty[:5])),
                split,
            )
