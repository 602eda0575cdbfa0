"""Opening a converted store: manifest checks and a row-group index built from Parquet footers alone.

The index is a handful of small arrays per split (one entry per row group), so a 50 M-row store
costs kilobytes of memory; rows are read on demand with `gather`.

Damage to a shard is found on read, never decoded into other drawings: the converter writes a
CRC-32 into every Parquet page (data and dictionary pages), which every row-group read verifies,
and records each shard's size and the SHA-256 of its footer (the Parquet metadata: row counts,
offsets, and the label statistics the index is built from), which every open verifies. What is
left, page headers, changes no decoded row or makes the read fail (`tests/data/test_integrity_store.py`
flips bytes across whole shards). `convert ... verify=true` compares each shard's SHA-256 as a
whole ([`shard_check`][quickdraw.data.store.shard_check]). Measured cost on read speed: docs/guides/data.md.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shlex
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from quickdraw.core.errors import QuickDrawError
from quickdraw.data.schema import SPLITS, Manifest
from quickdraw.data.strokes import StrokeBatch

READ_COLUMNS = ["key_id", "points", "stroke_lengths"]  # and "times" in shards that have it
MAX_OPEN_FILES = 512  # Kaggle's layout gives ~1,000 shard files; reopening costs a footer parse
log = logging.getLogger(__name__)
_warned_unchecked: set[Path] = set()  # stores without checksums, warned about once per process


class StoreError(QuickDrawError, RuntimeError):
    """A store is missing, damaged or from another schema: names the file and the fix."""


def _fix(store: Path, source: str | None = None) -> str:
    """The repair command, with `source` or else the one the manifest records (`PATH` when
    it records none or cannot be read); each setting quoted for the shell."""
    if source is None:
        try:
            source = json.loads((Path(store) / "manifest.json").read_text()).get("source")
        except (OSError, ValueError, AttributeError):  # no manifest, or a damaged one
            source = None
    args = shlex.join([f"source={source or 'PATH'}", f"store={store}", "verify=true"])
    return f"re-check and repair it with: python -m quickdraw.convert {args}"


def shard_check(path: Path) -> dict:
    """What the manifest records of a shard to find damage later: its size in bytes, the SHA-256
    of the whole file (`verify=true`) and of its footer (every open)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    footer = _footer_bytes(path)
    return {
        "bytes": path.stat().st_size,
        "sha256": digest.hexdigest(),
        "footer_sha256": hashlib.sha256(footer).hexdigest(),
    }


def _footer_bytes(path: Path) -> bytes:
    """The Parquet footer (metadata, its 4-byte length and the closing magic), read as stored."""
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        if size < 12:
            raise ValueError(f"{size} bytes, shorter than any Parquet file")
        f.seek(size - 8)
        tail = f.read(8)
        length = int.from_bytes(tail[:4], "little")
        if tail[4:] != b"PAR1" or length > size - 12:
            raise ValueError("no Parquet footer at its end")
        f.seek(size - 8 - length)
        return f.read(length + 8)


def _checked_metadata(path: Path, store: Path, check: dict | None) -> pq.FileMetaData:
    """The footer of `path`, parsed from the very bytes checked against `check` (None: an
    unchecked shard of an older store)."""
    if not path.is_file():
        raise StoreError(
            f"{path} is listed in {store / 'manifest.json'} but missing; {_fix(store)}"
        )
    try:
        if check and path.stat().st_size != check["bytes"]:
            raise ValueError(f"{path.stat().st_size} bytes, {check['bytes']} when converted")
        footer = _footer_bytes(path)
        if check and hashlib.sha256(footer).hexdigest() != check["footer_sha256"]:
            raise ValueError("its footer does not match the checksum recorded when converted")
        return pq.read_metadata(pa.BufferReader(footer))
    except (OSError, ValueError, pa.ArrowException) as e:
        raise StoreError(f"{path} is damaged ({e}); {_fix(store)}") from e


@dataclass
class Rows:
    """Drawings read from a store, in the order asked for."""

    strokes: StrokeBatch
    labels: np.ndarray  # int64 (B,)
    key_ids: np.ndarray  # int64 (B,)

    def __len__(self) -> int:
        return len(self.labels)

    def select(self, index: np.ndarray) -> Rows:
        return Rows(self.strokes.select(index), self.labels[index], self.key_ids[index])


class SplitIndex:
    """Row groups of one split: which file, which group, which class, how many rows."""

    def __init__(
        self,
        store: Path,
        files: list[str],
        num_classes: int,
        checks: dict[str, dict] | None = None,
        verify: bool = True,
        dropped: dict[str, list[int]] | None = None,
    ):
        """`dropped`: per file, rows left out (later copies of a key_id, manifest.duplicates)."""
        self.store = store
        self.files = [store / f for f in files]
        # Per file, what its footer must hash to (None: not recorded); verify=False reads without
        # any check, for the benchmark that measures their cost.
        self.checks = [(checks or {}).get(f) if verify else None for f in files]
        self.verify = verify
        file_ids, groups, labels, rows = [], [], [], []
        self.file_columns: list[list[str]] = []
        # Row groups that lose rows to `dropped`: group -> offsets of the rows served, so that
        # every row id below counts served rows only and the samplers never see a left-out one.
        self.rg_keep: dict[int, np.ndarray] = {}
        for i, path in enumerate(self.files):
            drop = np.asarray((dropped or {}).get(files[i], []), np.int64)
            first = 0  # the row group's first row in the file
            meta = _checked_metadata(path, store, self.checks[i])
            arrow_schema = meta.schema.to_arrow_schema()
            label_col = arrow_schema.get_field_index("label")
            timed = "times" in arrow_schema.names  # schema version 3 shards of timed sources
            self.file_columns.append(READ_COLUMNS + ["times"] * timed)
            for g in range(meta.num_row_groups):
                rg = meta.row_group(g)
                stats = rg.column(label_col).statistics
                if stats is None or not stats.has_min_max or stats.min != stats.max:
                    raise StoreError(
                        f"{path}: row group {g} mixes classes, not written by quickdraw.convert; {_fix(store)}"
                    )
                gone = drop[(drop >= first) & (drop < first + rg.num_rows)] - first
                first += rg.num_rows
                if len(gone):
                    keep = np.setdiff1d(np.arange(rg.num_rows), gone)
                    if not len(keep):
                        continue
                    self.rg_keep[len(groups)] = keep
                file_ids.append(i)
                groups.append(g)
                labels.append(stats.min)
                rows.append(rg.num_rows - len(gone))
        self.rg_file = np.asarray(file_ids, np.int32)
        self.rg_group = np.asarray(groups, np.int32)
        self.rg_label = np.asarray(labels, np.int64)
        self.rg_rows = np.asarray(rows, np.int64)
        self.rg_start = np.concatenate([[0], np.cumsum(self.rg_rows)])[:-1]
        if len(self.rg_label) and (self.rg_label.min() < 0 or self.rg_label.max() >= num_classes):
            raise StoreError(
                f"{store}: a label is outside the manifest's {num_classes} classes; {_fix(store)}"
            )
        # Row groups of class c are class_groups[class_ptr[c]:class_ptr[c + 1]].
        self.class_groups = np.argsort(self.rg_label, kind="stable")
        self.class_ptr = np.searchsorted(
            self.rg_label[self.class_groups], np.arange(num_classes + 1)
        )
        self.class_rows = np.bincount(
            self.rg_label, weights=self.rg_rows, minlength=num_classes
        ).astype(np.int64)
        self._open: OrderedDict[int, pq.ParquetFile] = OrderedDict()

    def __len__(self) -> int:
        return int(self.rg_rows.sum())

    def class_to_global(self, c: int, positions: np.ndarray) -> np.ndarray:
        """Global row ids of class `c`'s rows at `positions` (0..class_rows[c]-1)."""
        groups = self.class_groups[self.class_ptr[c] : self.class_ptr[c + 1]]
        cum = np.concatenate([[0], np.cumsum(self.rg_rows[groups])])
        k = np.searchsorted(cum, positions, side="right") - 1
        return self.rg_start[groups[k]] + (positions - cum[k])

    def gather(self, ids: np.ndarray) -> Rows:
        """Read rows by global id, each row group once, and return them in the order of `ids`."""
        ids = np.asarray(ids, np.int64)
        g = np.searchsorted(self.rg_start, ids, side="right") - 1
        order = np.argsort(g, kind="stable")
        parts, labels, keys = [], [], []
        bounds = np.flatnonzero(np.diff(g[order])) + 1
        for chunk in np.split(order, bounds) if len(order) else []:
            group = int(g[chunk[0]])
            offsets = ids[chunk] - self.rg_start[group]
            if group in self.rg_keep:
                offsets = self.rg_keep[group][offsets]
            table = self._read_group(group).take(pa.array(offsets))
            times = table["times"] if "times" in table.column_names else None
            try:
                parts.append(
                    StrokeBatch.from_arrow(table["points"], table["stroke_lengths"], times)
                )
            except ValueError as e:
                path = self.files[int(self.rg_file[group])]
                raise StoreError(f"{path}: damaged strokes ({e}); {_fix(self.store)}") from e
            keys.append(table["key_id"].to_numpy())
            labels.append(np.full(len(chunk), self.rg_label[group], np.int64))
        if not parts:
            return Rows(StrokeBatch.concat([]), np.zeros(0, np.int64), np.zeros(0, np.int64))
        rows = Rows(StrokeBatch.concat(parts), np.concatenate(labels), np.concatenate(keys))
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        return rows.select(inverse)

    def _read_group(self, group: int) -> pa.Table:
        file_id = int(self.rg_file[group])
        pf = self._open.pop(file_id, None)
        if pf is None:
            path = self.files[file_id]
            # The footer is checked again: a DataLoader worker opens the file anew.
            meta = _checked_metadata(path, self.store, self.checks[file_id])
            pf = pq.ParquetFile(path, metadata=meta, page_checksum_verification=self.verify)
            if len(self._open) >= MAX_OPEN_FILES:
                self._open.popitem(last=False)[1].close()
        self._open[file_id] = pf
        try:
            return pf.read_row_group(
                int(self.rg_group[group]), columns=self.file_columns[file_id], use_threads=False
            )
        except (OSError, pa.ArrowException) as e:
            raise StoreError(
                f"{self.files[file_id]} is damaged: cannot read row group "
                f"{int(self.rg_group[group])} ({e}); {_fix(self.store)}"
            ) from e

    def __getstate__(self) -> dict:
        # Open file handles stay in the process that opened them (DataLoader workers reopen their own).
        return {**self.__dict__, "_open": OrderedDict()}


class Store:
    """A converted store: its manifest and one row-group index per split, checked against each other."""

    def __init__(self, path: str | Path, verify: bool = True):
        """`verify=False` skips the checksums (only the benchmark that measures them does)."""
        self.path = Path(path)
        try:
            self.manifest = Manifest.load(self.path)
        except (FileNotFoundError, ValueError) as e:
            raise StoreError(str(e)) from e
        self.classes = list(self.manifest.classes)
        self.splits: dict[str, SplitIndex] = {}
        checks = self.manifest.shard_checks
        self._warn_if_unchecked()
        dropped = self.manifest.duplicates.get("dropped")
        for split in SPLITS:
            files = self.manifest.shards.get(split, [])
            index = SplitIndex(self.path, files, len(self.classes), checks, verify, dropped)
            expected = np.asarray(self.manifest.counts[split], np.int64)
            if not np.array_equal(index.class_rows, expected):
                bad = int(np.flatnonzero(index.class_rows != expected)[0])
                raise StoreError(
                    f"{self.path}/{split}: class {self.classes[bad]!r} has {index.class_rows[bad]} rows in its shards "
                    f"but {expected[bad]} in the manifest; {_fix(self.path)}"
                )
            self.splits[split] = index

    def _warn_if_unchecked(self) -> None:
        """An older store (no checksums recorded) is still read, with a warning that says how to add them."""
        shards = [p for files in self.manifest.shards.values() for p in files]
        unchecked = [p for p in shards if p not in self.manifest.shard_checks]
        if unchecked and self.path.resolve() not in _warned_unchecked:
            _warned_unchecked.add(self.path.resolve())
            log.warning(
                "%s: %d of %d shards were converted without checksums (by an older quickdraw), "
                "so damage to them may go unnoticed; %s (this adds them)",
                self.path,
                len(unchecked),
                len(shards),
                _fix(self.path, self.manifest.source),
            )

    def require_times(self) -> None:
        """Refuse, naming the fix, a store whose shards lack per-point times (for `time_source=ms`)."""
        untimed = [
            str(index.files[i])
            for index in self.splits.values()
            for i, columns in enumerate(index.file_columns)
            if "times" not in columns
        ]
        if untimed:
            raise StoreError(
                f"raster.time_source=ms needs per-point times, but {len(untimed)} shards of "
                f"{self.path} have none (e.g. {untimed[0]}): convert raw drawings (Google's raw "
                "ndjson, Kaggle's raw CSV) into a new store, "
                "python -m quickdraw.convert source=RAW store=NEW_DIR, or train with "
                "data.raster.time_source=order"
            )

    def __getitem__(self, split: str) -> SplitIndex:
        return self.splits[split]
