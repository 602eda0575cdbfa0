"""Duplicate key_ids in a source (`settings.duplicates`): found, counted by file, served once.

A key_id names one drawing: the split hashes it, evaluation and Kaggle submissions are keyed by
it. A browser's re-download (`cat (1).csv` beside `cat.csv`) or a file concatenated twice
would otherwise put each drawing in the store twice, and one key_id under two words would teach
both. The rules, whichever way the copies arrive (twice in one file, in two files of one class,
in files of two classes, in a zip, in any format):

* same key_id, same class: a duplicate. `drop` (the default) keeps the first copy in source
  order (files in the sorted order [`discover_sources`][quickdraw.data.listing.discover_sources] lists them,
  then rows in file order) and warns with the count per file; `error` refuses the source;
  `keep` keeps every copy and still counts them. The copy's drawing may differ from the first
  (a key_id reused by another tool, raw and simplified versions of one drawing): the key_id still
  names one drawing, so it is a duplicate too, counted apart as `different_drawing`.
* same key_id, different class: conflicting labels, an error under `drop` and `error` that
  names the key_id, both words and both files (no rule can tell which word is right). Under
  `keep` the user has said key_ids do not identify drawings in this source: counted and warned.

Where: duplicates within one file are left out by the worker that converts it (a pure function
of the file, so resuming reconverts it to the same shards). Duplicates across files are found
after every file is converted, from the shards' `key_id` columns alone, and the manifest lists
the rows of the later copies (`duplicates.dropped`) that [`Store`][quickdraw.data.store.Store]
leaves out when it indexes a split. Shards are never rewritten: each stays what its own file
made (its receipt and checksum stay true), and the list is derived again from all shards every
time the manifest is built, so resuming, converting files added to the source later, or
converting a changed file again gives the list a fresh conversion would, whichever file holds
the first copy. Rewriting the shards of the file holding a later copy would instead lose that
file's rows for good once the file holding the first copy changes.
"""

from __future__ import annotations

import logging
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from quickdraw.core.errors import InputError, SettingError
from quickdraw.data.schema import SPLITS

log = logging.getLogger(__name__)
POLICIES = ("keep", "drop", "error")
EXAMPLES = 20
FILTERED = "duplicate_key_id"  # the reason under which dropped copies count in manifest.filtered


class DuplicateKeyError(InputError):
    """A key_id met twice that the policy refuses, or under two words: names both files, the fix."""


def check_policy(policy: str) -> str:
    if policy not in POLICIES:
        raise SettingError(f"duplicates must be one of {', '.join(POLICIES)}, not {policy!r}")
    return policy


def drawing_digest(points: np.ndarray, lengths: Sequence[int]) -> int:
    """CRC-32 of a drawing's points and stroke lengths: tells an identical copy from another."""
    crc = zlib.crc32(np.ascontiguousarray(points, np.uint8).tobytes())
    return zlib.crc32(np.asarray(lengths, np.int64).tobytes(), crc)


def _conflict(key_id: int, first: str, second: str) -> DuplicateKeyError:
    return DuplicateKeyError(
        f"key_id {key_id} is labelled {first} and {second}: one drawing cannot be both. Remove "
        "the wrong row, or pass settings.duplicates=keep if key_ids do not identify drawings in "
        "this source"
    )


def _refused(count: int, key_id: int, first: str, second: str) -> DuplicateKeyError:
    return DuplicateKeyError(
        f"{count} rows repeat a key_id already stored (settings.duplicates=error), e.g. key_id "
        f"{key_id} in {first} and again in {second}. Remove the repeated rows or files (a "
        "browser's second download such as 'cat (1).csv'?), or pass settings.duplicates=drop to "
        "keep the first copy of each"
    )


@dataclass
class SeenKeys:
    """The key_ids of one input file met so far, for the worker converting it (drop or error)."""

    file: str
    policy: str
    classes: Sequence[str]
    first: dict[int, tuple[int, int | str | None, int]] = field(default_factory=dict)
    rows: int = 0  # repeats left out
    different_drawing: int = 0
    examples: list[dict] = field(default_factory=list)

    def repeats(self, key_id: int, label: int, line, points: np.ndarray, lengths) -> bool:
        """True when this row repeats a key_id of an earlier row of the file and is to be left out.

        Raises DuplicateKeyError when the earlier row has another class, or under `error`.
        """
        digest = drawing_digest(points, lengths)
        seen = self.first.get(key_id)
        if seen is None:
            self.first[key_id] = (label, line, digest)
            return False
        first_label, first_line, first_digest = seen
        if first_label != label:
            where = f"{self.file} line {{}}"
            raise _conflict(
                key_id,
                f"{self.classes[first_label]!r} ({where.format(first_line)})",
                f"{self.classes[label]!r} ({where.format(line)})",
            )
        if self.policy == "error":
            raise _refused(1, key_id, f"{self.file} line {first_line}", f"line {line}")
        self.rows += 1
        self.different_drawing += digest != first_digest
        if len(self.examples) < EXAMPLES:
            self.examples.append(
                {"key_id": key_id, "file": self.file, "line": line, "kept_in": self.file,
                 "kept_line": first_line, "same_drawing": digest == first_digest}
            )  # fmt: skip
        return True

    def receipt(self) -> dict:
        """What the file's receipt records: `{"rows", "different_drawing", "examples"}`."""
        return {"rows": self.rows, "different_drawing": self.different_drawing,
                "examples": self.examples}  # fmt: skip


@dataclass
class Duplicates:
    """Repeated key_ids of a whole converted source, as the manifest records them."""

    policy: str
    by_file: dict[str, int]  # source file -> its rows whose key_id an earlier row has
    different_drawing: int = 0  # of those, copies whose strokes differ from the first copy's
    conflicting_labels: int = 0  # of those, copies of another class (counted under keep only)
    dropped: dict[str, list[int]] = field(default_factory=dict)  # shard -> rows not served
    dropped_counts: dict[str, list[int]] = field(default_factory=dict)  # split -> per class
    dropped_by_file: Counter = field(default_factory=Counter)  # source file -> rows in `dropped`
    examples: list[dict] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(self.by_file.values())

    def record(self) -> dict:
        """The manifest's `duplicates` entry (`dropped` is what the Store reads)."""
        return {
            "policy": self.policy,
            "rows": self.rows,
            "by_file": self.by_file,
            "different_drawing": self.different_drawing,
            "conflicting_labels": self.conflicting_labels,
            "examples": self.examples,
            "dropped": self.dropped,
        }


@dataclass
class _Shards:
    """Every shard of the source in source order: (file, split, path) and each one's key_ids."""

    names: list[tuple[str, str, str]]
    keys: np.ndarray  # int64, all shards' key_ids concatenated in that order
    starts: np.ndarray  # (len(names) + 1,) offset of each shard's first row in `keys`

    def locate(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(shard index, row within the shard) of global positions."""
        shard = np.searchsorted(self.starts, positions, side="right") - 1
        return shard, positions - self.starts[shard]


def _read_keys(store: Path, sources: Sequence, receipts: dict) -> _Shards:
    names = [
        (src.name, split, rel)
        for src in sources
        for split in SPLITS
        for rel in receipts[src.id]["shards"][split]
    ]
    keys = [
        pq.read_table(store / rel, columns=["key_id"])["key_id"].to_numpy() for *_, rel in names
    ]
    starts = np.concatenate([[0], np.cumsum([len(k) for k in keys], dtype=np.int64)])
    return _Shards(names, np.concatenate(keys) if keys else np.zeros(0, np.int64), starts)


def _repeats(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(later, first): global positions of every copy after the first of its key_id, in source
    order, and of that first copy.

    A plain sort of the keys finds the repeated values (half the cost of the stable argsort
    that ordering every row would need; Arrow's hash count is slower still on distinct keys);
    Arrow's hash lookup finds the rows holding them, and only those are sorted, stably, so
    that source order decides among equal keys.
    """
    ordered = np.sort(keys)
    repeated = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
    held = np.flatnonzero(pc.is_in(keys, value_set=pa.array(repeated)).to_numpy(False))
    order = held[np.argsort(keys[held], kind="stable")]
    ordered = keys[order]
    new = np.concatenate([[True], ordered[1:] != ordered[:-1]])
    starts = np.flatnonzero(new)
    later = np.flatnonzero(~new)
    first = order[starts[np.searchsorted(starts, later, side="right") - 1]]
    in_source_order = np.argsort(order[later], kind="stable")
    return order[later][in_source_order], first[in_source_order]


def _rows(store: Path, shards: _Shards, positions: np.ndarray) -> pa.Table:
    """Label and strokes of the rows at sorted unique global `positions`, in that order."""
    shard, row = shards.locate(positions)
    parts = []
    for s in np.unique(shard):
        table = pq.read_table(
            store / shards.names[s][2], columns=["label", "points", "stroke_lengths"]
        )
        parts.append(table.take(pa.array(row[shard == s])))
    return pa.concat_tables(parts)


def find_duplicates(
    store: Path, sources: Sequence, receipts: dict, classes: Sequence[str], policy: str
) -> Duplicates:
    """Repeated key_ids across the converted files of `sources` (receipts as the converter
    writes them), with the within-file repeats their workers left out added to `by_file`.

    Reads every shard's `key_id` column (8 bytes a row), then label and strokes of the repeated
    rows only. Raises DuplicateKeyError for conflicting labels (unless `policy` is `keep`) and,
    under `error`, for any repeat.
    """
    shards = _read_keys(store, sources, receipts)
    later, first = _repeats(shards.keys)
    within = {s.name: receipts[s.id].get("duplicates", {}) for s in sources}
    by_file = Counter({name: d["rows"] for name, d in within.items() if d.get("rows")})
    found = Duplicates(policy, {})
    found.examples = [e for d in within.values() for e in d.get("examples", [])][:EXAMPLES]
    found.different_drawing = sum(d.get("different_drawing", 0) for d in within.values())
    if len(later):
        _judge(store, shards, later, first, classes, found, by_file)
    found.by_file = dict(by_file)
    _log(found)
    return found


def _judge(store, shards, later, first, classes, found: Duplicates, by_file: Counter) -> None:
    """Sort the repeats into conflicts, refusals and drops (`found` and `by_file` updated)."""
    needed = np.unique(np.concatenate([later, first]))
    table = _rows(store, shards, needed)
    at_later, at_first = np.searchsorted(needed, later), np.searchsorted(needed, first)
    labels = table["label"].to_numpy()
    points = table["points"].to_pylist()
    lengths = table["stroke_lengths"].to_pylist()
    same = [
        points[a] == points[b] and lengths[a] == lengths[b]
        for a, b in zip(at_later, at_first, strict=True)
    ]
    conflict = labels[at_later] != labels[at_first]
    (later_shard, later_row), first_shard = shards.locate(later), shards.locate(first)[0]
    file = lambda s: shards.names[s][0]  # noqa: E731
    if conflict.any() and found.policy != "keep":
        i = int(np.flatnonzero(conflict)[0])
        raise _conflict(
            int(shards.keys[later[i]]),
            f"{classes[labels[at_first[i]]]!r} in {file(first_shard[i])}",
            f"{classes[labels[at_later[i]]]!r} in {file(later_shard[i])}",
        )
    if found.policy == "error":
        key = int(shards.keys[later[0]])
        raise _refused(len(later), key, file(first_shard[0]), file(later_shard[0]))
    found.conflicting_labels = int(conflict.sum())
    found.different_drawing += len(same) - sum(same)
    by_file.update(file(s) for s in later_shard)
    for i in range(min(len(later), EXAMPLES - len(found.examples))):
        found.examples.append(
            {"key_id": int(shards.keys[later[i]]), "file": file(later_shard[i]),
             "split": shards.names[later_shard[i]][1], "kept_in": file(first_shard[i]),
             "same_drawing": same[i], "same_label": not conflict[i]}
        )  # fmt: skip
    if found.policy == "drop":
        _drop(shards, later_shard, later_row, labels[at_later], len(classes), found)


def _drop(shards: _Shards, shard, row, labels, n_classes: int, found: Duplicates) -> None:
    """Record the later copies as rows the Store leaves out, and per split and class how many."""
    found.dropped_counts = {s: [0] * n_classes for s in SPLITS}
    dropped: dict[str, list[int]] = {}
    for s, r, label in zip(shard.tolist(), row.tolist(), labels.tolist(), strict=True):
        name, split, rel = shards.names[s]
        dropped.setdefault(rel, []).append(r)
        found.dropped_counts[split][label] += 1
        found.dropped_by_file[name] += 1
    found.dropped = {rel: sorted(rows) for rel, rows in sorted(dropped.items())}


def _log(found: Duplicates) -> None:
    """One warning per file with repeats: how many, which policy applied, an example."""
    if not found.rows:
        return
    action = {"drop": "left out (first copy kept)", "keep": "kept (settings.duplicates=keep)"}
    log.warning(
        "%d rows repeat a key_id of an earlier row, %s; %d of them with another drawing%s",
        found.rows,
        action.get(found.policy, "found"),
        found.different_drawing,
        f", {found.conflicting_labels} with another word" if found.conflicting_labels else "",
    )
    for name, n in found.by_file.items():
        example = next((e for e in found.examples if e["file"] == name), None)
        shown = (
            f" (e.g. key_id {example['key_id']}, first in {example['kept_in']})" if example else ""
        )
        log.warning("  %s: %d repeated key_ids%s", name, n, shown)
