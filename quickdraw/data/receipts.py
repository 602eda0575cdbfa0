"""A store's record of its conversion: the settings file, one receipt per finished input file,
their checks, and the manifest summed from them.

A receipt in `_sources/` marks an input file done: an interrupted run converts again only the
files without one (after deleting their stray shards), and `verify=true` checks each finished
file's shards against the SHA-256 its receipt recorded.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from quickdraw.core.errors import InputError, SettingError
from quickdraw.core.files import write_json
from quickdraw.data.convert_file import ConvertSettings, same_stamp
from quickdraw.data.duplicates import FILTERED, Duplicates
from quickdraw.data.formats.base import InputFile
from quickdraw.data.schema import MANIFEST, READABLE_VERSIONS, SCHEMA_VERSION, SPLITS, Manifest
from quickdraw.data.store import shard_check

log = logging.getLogger(__name__)
SOURCES_DIR = "_sources"
SETTINGS_FILE = "_settings.json"


def check_settings(store: Path, settings: ConvertSettings) -> None:
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


def check_same_source(store: Path, sources: Sequence[InputFile]) -> None:
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


def load_receipts(store: Path, sources: Sequence[InputFile]) -> dict[str, dict]:
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


def verify_shards(store: Path, sources: Sequence[InputFile]) -> None:
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


def remove_stray_shards(store: Path, source_id: str) -> None:
    for split in SPLITS:
        d = store / split
        if d.is_dir():
            for p in list(d.glob(f"{source_id}-*.parquet")) + list(d.glob(f".{source_id}-*.tmp")):
                p.unlink()


def build_manifest(
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


def report(manifest: Manifest, receipts: dict, seconds: float) -> None:
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
