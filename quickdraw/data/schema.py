"""The store's contract: Parquet schema, deterministic split assignment and the manifest.

A store is a folder:

    manifest.json                  classes, per-split per-class counts, bad rows, sources (with the
                                   stamps that tell a changed file), shards and their checksums,
                                   the path converted, origin (Quick, Draw! data, the project's
                                   generated doodles, or both)
    train/<source-id>-<part>.parquet
    val/...   test/...
    _sources/<source-id>.json      one receipt per finished input (what makes conversion resumable)

Row groups never mix classes, so the DataModule can index a store from Parquet footers alone.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from quickdraw.core.errors import InputError, MissingPathError
from quickdraw.core.files import write_json

SCHEMA_VERSION = 3
"""Version 3 adds per-point times, where the source has them; otherwise it is version 2, which
stores strokes as two columns (version 1 had `x` and `y` as `list<list<uint8>>`).

* `points` (binary, one value per drawing): the drawing's points as interleaved bytes
  `x0 y0 x1 y1 ...`, each the difference from the drawing's previous point modulo 256 (the first
  point's from (0, 0)); a running uint8 sum decodes it exactly (`StrokeBatch.from_arrow`).
* `stroke_lengths` (`list<uint16>`): points per stroke, so strokes hold at most 65,535 points.

Why: Parquet keeps uint8 as 4-byte INT32 values with repetition levels per point, so version 1's
nested lists were large. Consecutive points of a pen stroke are close, so their deltas are small
and repetitive, and one byte string per drawing written with DELTA_LENGTH_BYTE_ARRAY (lengths apart
from the bytes) lets zstd see just them, with a decoder as vectorised as before (sizes against
gzip CSV: docs/guides/data.md; `python -m benchmarks.data`).
Dictionaries serve only the low-cardinality columns (random key_ids and timestamps do not repeat).

Version 3: shards converted from a source with per-point times (Google's raw ndjson, Kaggle's raw
CSV) carry one more column, `times` (binary, one value per drawing, null for a drawing without
times): the points' times rounded to ms, each the difference from the previous point's, as zigzag
varints (`StrokeBatch.times_to_arrow`, [`quickdraw.data.varint`][quickdraw.data.varint]). Shards of simplified
sources have no such column and are byte for byte what version 2 wrote, so a version 2 store is
read as a version 3 store without times (`READABLE_VERSIONS`); version 1 and unknown versions
are refused with the command that converts again. Cost, measured on the real raw sample
(`../shared/data/quickdraw-sample/raw`, 6,673 drawings): the shards grow from 2.54 MB to 3.33 MB
(+31 %; `times` is 571 kB of column data against 697 kB for `points`): pen timing is noisier
than pen position. Varints beat int32 differences under the same zstd by 30 % (820 kB, +47 %)
and still decode in numpy without a loop per value.
"""
READABLE_VERSIONS = (2, 3)
SPLITS = ("train", "val", "test")
MANIFEST = "manifest.json"

SCHEMA = pa.schema(
    [
        pa.field("key_id", pa.int64(), nullable=False),
        pa.field("label", pa.int16(), nullable=False),
        pa.field("points", pa.binary(), nullable=False),
        pa.field("stroke_lengths", pa.list_(pa.uint16()), nullable=False),
        pa.field("countrycode", pa.string()),
        pa.field("recognized", pa.bool_()),
        pa.field("timestamp", pa.timestamp("us", tz="UTC")),
    ]
)
TIMED_SCHEMA = SCHEMA.append(pa.field("times", pa.binary()))
# Keyword arguments of `pyarrow.parquet.ParquetWriter` for store shards, by whether they have times.
WRITE_OPTIONS = {
    "compression": "zstd",
    "compression_level": 6,
    "use_dictionary": ["label", "countrycode", "recognized"],
    "column_encoding": {"points": "DELTA_LENGTH_BYTE_ARRAY"},
    # A CRC-32 in every page, verified on every read: a flipped bit fails the read instead of
    # decoding to another drawing (older readers ignore it, so shards stay readable by them).
    "write_page_checksum": True,
}
TIMED_WRITE_OPTIONS = WRITE_OPTIONS | {
    "column_encoding": {"points": "DELTA_LENGTH_BYTE_ARRAY", "times": "DELTA_LENGTH_BYTE_ARRAY"}
}


def split_hash(key_ids: np.ndarray, seed: int = 0) -> np.ndarray:
    """Uniform floats in [0, 1) from key_ids (splitmix64): same answer on every machine and input order."""
    with np.errstate(over="ignore"):
        z = np.asarray(key_ids).astype(np.uint64) + np.uint64(
            (0x9E3779B97F4A7C15 * (seed + 1)) % 2**64
        )
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(2**53)


def assign_split(key_ids: np.ndarray, val: float, test: float, seed: int = 0) -> np.ndarray:
    """Split index per row: 0 train, 1 val, 2 test (`val`/`test` are fractions)."""
    u = split_hash(key_ids, seed)
    return np.where(u < val, 1, np.where(u < val + test, 2, 0)).astype(np.int8)


@dataclass
class Manifest:
    """What a store holds; written last, so a store with a manifest is complete."""

    classes: list[str]
    counts: dict[str, list[int]]  # split -> rows per class (index = label)
    bad_rows: dict[str, int] = field(default_factory=dict)  # reason -> count
    filtered: dict[str, int] = field(default_factory=dict)  # reason -> count (kept out on purpose)
    sources: list[dict] = field(default_factory=list)  # {name, bytes, rows_read, rows_kept}
    shards: dict[str, list[str]] = field(
        default_factory=dict
    )  # split -> paths relative to the store
    settings: dict = field(default_factory=dict)  # conversion settings that shaped the store
    bad_examples: list[dict] = field(
        default_factory=list
    )  # first bad rows: file, line, reason, detail
    origin: str = ""  # quickdraw.data.origin: "quickdraw", "generated", "mixed"; "" = not recorded
    source: str = ""  # the converted path, absolute; "" = not recorded (converted before it was)
    # shard path -> {bytes, sha256, footer_sha256} (quickdraw.data.store.shard_check); shards
    # missing here were converted without checksums (read with a warning)
    shard_checks: dict[str, dict] = field(default_factory=dict)
    # quickdraw.data.duplicates: repeated key_ids by file, rows the Store leaves out; {} = not recorded
    duplicates: dict = field(default_factory=dict)
    # quickdraw.data.artefacts: operating-system files the listing skipped, kind -> count
    skipped_files: dict[str, int] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    @property
    def rows(self) -> dict[str, int]:
        return {split: int(sum(c)) for split, c in self.counts.items()}

    def save(self, store: str | os.PathLike) -> None:
        write_json(Path(store) / MANIFEST, asdict(self))

    @classmethod
    def load(cls, store: str | os.PathLike) -> Manifest:
        path = Path(store) / MANIFEST
        if not path.is_file():
            raise MissingPathError(
                f"{path} does not exist: {store} is not a converted store (or its conversion did not finish). "
                f"Build it with: python -m quickdraw.convert source=PATH store={store}"
            )
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise InputError(
                f"{path} is not valid JSON ({e}); rebuild it from the conversion's receipts: "
                f"python -m quickdraw.convert source=PATH store={store} verify=true"
            ) from e
        version = data.get("schema_version")
        if version not in READABLE_VERSIONS:
            readable = " and ".join(map(str, READABLE_VERSIONS))
            raise InputError(
                f"{path} has schema_version {version}, this quickdraw reads {readable}; "
                f"rebuild it: python -m quickdraw.convert source=PATH store=NEW_DIR"
            )
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})
