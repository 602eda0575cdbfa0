"""Whether a converted store still holds what its source holds now: new, changed and removed files.

A store records each converted input file's id and stamp (size and modification time on disk, or
a zip member's sizes and CRC-32: [`quickdraw.data.convert_file.source_stamp`][quickdraw.data.convert_file.source_stamp]) in its manifest, and
the path it was converted from. Comparing them with the source costs one `stat` a file and
reads no drawing, so training does it at every start ([`quickdraw.data.sources`][quickdraw.data.sources]).
"""

from __future__ import annotations

import json
import logging
import shlex
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from quickdraw.data.convert_file import ConvertSettings, same_stamp
from quickdraw.data.formats.base import InputFile
from quickdraw.data.listing import discover_sources
from quickdraw.data.receipts import SETTINGS_FILE, SOURCES_DIR
from quickdraw.data.schema import Manifest
from quickdraw.data.store import StoreError

log = logging.getLogger(__name__)


@dataclass
class Staleness:
    """Input files (by name) that a store lacks, holds an older version of, or holds but the
    source no longer has."""

    new: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def fresh(self) -> bool:
        return not (self.new or self.changed or self.removed)

    def __str__(self) -> str:
        """E.g. `1 new (bee.csv), 2 changed (ant.csv, cat.csv)`."""
        groups = (("new", self.new), ("changed", self.changed), ("removed", self.removed))
        return ", ".join(f"{len(names)} {what} ({_some(names)})" for what, names in groups if names)


def _some(names: list[str], shown: int = 3) -> str:
    more = f", and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(Path(n).name for n in names[:shown]) + more


def staleness(store: Path, sources: Sequence[InputFile]) -> Staleness:
    """How `store` differs from `sources` (the files its source holds now)."""
    recorded = _recorded(store)
    ids = {s.id for s in sources}
    return Staleness(
        new=[s.name for s in sources if s.id not in recorded],
        changed=[s.name for s in sources if s.id in recorded and not same_stamp(recorded[s.id], s)],
        removed=sorted(str(e.get("name", i)) for i, e in recorded.items() if i not in ids),
    )


def _recorded(store: Path) -> dict[str, dict]:
    """Converted files by id: the manifest's entries, or for a manifest written before they
    carried ids, the receipts in `_sources/` (what the conversion itself resumes from)."""
    try:
        entries = Manifest.load(store).sources
    except ValueError as e:  # a damaged manifest: the message names it and its fix
        raise StoreError(str(e)) from e
    if entries and all("id" in e for e in entries):
        return {e["id"]: e for e in entries}
    receipts = (p for p in (store / SOURCES_DIR).glob("*.json") if p.name != SETTINGS_FILE)
    return {p.stem: json.loads(p.read_text()) for p in receipts}


def convert_command(source: Path, store: Path, settings: dict, overwrite: bool) -> str:
    """The `quickdraw.convert` command that brings `store` up to date with `source` under the
    same settings (those that differ from the defaults; `classes` only when given)."""
    default = asdict(ConvertSettings())
    args = [f"source={source}", f"store={store}"] + [
        f"settings.{k}={_hydra_value(v)}"
        for k, v in settings.items()
        if k in default and v != default[k]
    ]
    return "python -m quickdraw.convert " + shlex.join(args + ["overwrite=true"] * overwrite)


def _hydra_value(value) -> str:
    if isinstance(value, list | tuple):
        return "[" + ",".join(map(str, value)) + "]"
    return (
        "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    )


def log_recorded_source(store: Path) -> None:
    """Say whether a store given directly (`data.store`) is up to date with the source it was
    converted from; it is used as it is either way (its source may be on another machine)."""
    try:
        manifest = Manifest.load(store)
    except (FileNotFoundError, ValueError):
        return  # opening the store reports it, with its fix
    if not manifest.source:
        log.info("data: store %s (converted before stores recorded their source)", store)
        return
    source = Path(manifest.source)
    if not source.exists():
        log.info(
            "data: store %s; its source %s is not on this machine: used as converted", store, source
        )
        return
    try:
        found = staleness(store, discover_sources(source))
    except (OSError, ValueError) as e:
        log.warning("data: store %s; its source %s could not be listed (%s)", store, source, e)
        return
    if found.fresh:
        log.info("data: store %s, up to date with its source %s", store, source)
        return
    settings = {k: v for k, v in manifest.settings.items() if k != "classes"}
    log.warning(
        "data: store %s is out of date with its source %s (%s since it was converted); "
        "training uses it as converted. Update it with: %s",
        store,
        source,
        found,
        convert_command(source, store, settings, overwrite=bool(found.removed)),
    )
