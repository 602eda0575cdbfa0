"""Opening a converted store: manifest checks and a row-group index built from Parquet footers alone.

The index is a handful of small arrays per split (one entry per row group), so a 50 M-row store
costs kilobytes of memory; rows are read on demand with ``gather``.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from quickdraw.data.schema import SPLITS, Manifest
from quickdraw.data.strokes import StrokeBatch

READ_COLUMNS = ["key_id", "points", "stroke_lengths"]  # and "times" in shards that have it
MAX_OPEN_FILES = 512  # Kaggle's layout gives ~1,000 shard files; reopening costs a footer parse


class StoreError(RuntimeError):
    """A store is missing, damaged or from another schema: names the file and the fix."""


def _fix(store: Path) -> str:
    return f"re-check and repair it with: python -m quickdraw.convert source=PATH store={store} verify=true"


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

    def __init__(self, store: Path, files: list[str], num_classes: int):
        self.store = store
        self.files = [store / f for f in files]
        file_ids, groups, labels, rows = [], [], [], []
        self.file_columns: list[list[str]] = []
        for i, path in enumerate(self.files):
            meta = _read_footer(path, store)
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
                file_ids.append(i)
                groups.append(g)
                labels.append(stats.min)
                rows.append(rg.num_rows)
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
        """Global row ids of class ``c``'s rows at ``positions`` (0..class_rows[c]-1)."""
        groups = self.class_groups[self.class_ptr[c] : self.class_ptr[c + 1]]
        cum = np.concatenate([[0], np.cumsum(self.rg_rows[groups])])
        k = np.searchsorted(cum, positions, side="right") - 1
        return self.rg_start[groups[k]] + (positions - cum[k])

    def gather(self, ids: np.ndarray) -> Rows:
        """Read rows by global id, each row group once, and return them in the order of ``ids``."""
        ids = np.asarray(ids, np.int64)
        g = np.searchsorted(self.rg_start, ids, side="right") - 1
        order = np.argsort(g, kind="stable")
        parts, labels, keys = [], [], []
        bounds = np.flatnonzero(np.diff(g[order])) + 1
        for chunk in np.split(order, bounds) if len(order) else []:
            group = int(g[chunk[0]])
            table = self._read_group(group).take(pa.array(ids[chunk] - self.rg_start[group]))
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
            pf = pq.ParquetFile(self.files[file_id])
            if len(self._open) >= MAX_OPEN_FILES:
                self._open.popitem(last=False)[1].close()
        self._open[file_id] = pf
        try:
            return pf.read_row_group(
                int(self.rg_group[group]), columns=self.file_columns[file_id], use_threads=False
            )
        except (OSError, pa.ArrowException) as e:
            raise StoreError(
                f"{self.files[file_id]}: cannot read row group ({e}); {_fix(self.store)}"
            ) from e

    def __getstate__(self) -> dict:
        # Open file handles stay in the process that opened them (DataLoader workers reopen their own).
        return {**self.__dict__, "_open": OrderedDict()}


def _read_footer(path: Path, store: Path):
    if not path.is_file():
        raise StoreError(
            f"{path} is listed in {store / 'manifest.json'} but missing; {_fix(store)}"
        )
    try:
        return pq.read_metadata(path)
    except (OSError, pa.ArrowException) as e:
        raise StoreError(f"{path} is not a readable Parquet file ({e}); {_fix(store)}") from e


class Store:
    """A converted store: its manifest and one row-group index per split, checked against each other."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.manifest = Manifest.load(self.path)
        except (FileNotFoundError, ValueError) as e:
            raise StoreError(str(e)) from e
        self.classes = list(self.manifest.classes)
        self.splits: dict[str, SplitIndex] = {}
        for split in SPLITS:
            index = SplitIndex(self.path, self.manifest.shards.get(split, []), len(self.classes))
            expected = np.asarray(self.manifest.counts[split], np.int64)
            if not np.array_equal(index.class_rows, expected):
                bad = int(np.flatnonzero(index.class_rows != expected)[0])
                raise StoreError(
                    f"{self.path}/{split}: class {self.classes[bad]!r} has {index.class_rows[bad]} rows in its shards "
                    f"but {expected[bad]} in the manifest; {_fix(self.path)}"
                )
            self.splits[split] = index

    def require_times(self) -> None:
        """Refuse, naming the fix, a store whose shards lack per-point times (for ``time_source=ms``)."""
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
