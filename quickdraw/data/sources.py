"""Where a store comes from: an existing folder, a source converted once into a cache, or the generated set.

[`ensure_store`][quickdraw.data.sources.ensure_store] is the one place that resolves, generates, converts and caches a store, for
training (the DataModule's `prepare_data`), the report and the notebooks. Under several
processes (DDP ranks, SLURM tasks) only the first process of each node builds it; the others
wait for its manifest. Cached stores are named by schema version too: after an upgrade that
changes the schema, a cache is rebuilt beside the old one rather than refused.

A store converted from `data.source` is checked against it at every start
([`quickdraw.data.staleness`][quickdraw.data.staleness]): files added to the source or changed since are converted into
it (the whole source again when the classes change, since every label changes), files removed
from it are refused with the command that rebuilds the store, and the log says which store is
used and that it is up to date. A store given as `data.store` is used as it is; the log says
whether it is up to date with the source it records, when that source is on this machine.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quickdraw.core.ranks import local_rank
from quickdraw.data import synthetic
from quickdraw.data.conversion import convert, infer_classes
from quickdraw.data.convert_file import ConvertSettings
from quickdraw.data.listing import discover_sources
from quickdraw.data.origin import MARKER
from quickdraw.data.schema import MANIFEST, SCHEMA_VERSION, Manifest
from quickdraw.data.staleness import convert_command, log_recorded_source, staleness
from quickdraw.data.store import StoreError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoreSource:
    """Where a store comes from: the data config's `STORE_KEYS`.

    `store`: that folder. `source`: converted into a cache under `cache_dir/stores`, named
    by the source, the schema version and a hash of the source path and conversion settings.
    Neither: the generated doodle set (`synthetic_per_class` drawings a class, `synthetic_seed`)
    converted under `cache_dir/synthetic`.
    """

    store: str | Path | None = None
    source: str | Path | None = None
    cache_dir: str | Path = "data"
    synthetic_per_class: int = 3000
    synthetic_seed: int = 0
    convert_settings: dict | None = None

    @property
    def path(self) -> Path:
        """The store folder (computed, not built)."""
        cache = Path(self.cache_dir).expanduser()
        if self.store:
            return Path(self.store).expanduser()
        if self.source:
            settings = sorted(dict(self.convert_settings or {}).items())
            source = Path(self.source).expanduser()
            tag = hashlib.sha1(f"{source.resolve()}|{settings}".encode()).hexdigest()[:10]
            return cache / "stores" / f"{source.stem}-v{SCHEMA_VERSION}-{tag}"
        n, seed = self.synthetic_per_class, self.synthetic_seed
        return cache / "synthetic" / f"store-v{SCHEMA_VERSION}-n{n}-s{seed}"

    def ensure(self, timeout: float = 24 * 3600) -> Path:
        """The store, built first when missing; see [`ensure_store`][quickdraw.data.sources.ensure_store]."""
        path = self.path
        if self.source:
            return self._ensure_current(path, Path(self.source).expanduser(), timeout)
        if (path / MANIFEST).exists():
            if self.store:
                log_recorded_source(path)
            else:
                log.info("data: store %s (the generated doodle set)", path)
            return path
        if local_rank() != 0:
            _wait_for(path, timeout)
            return path
        cache = Path(self.cache_dir).expanduser()
        if self.store:
            found = _stores_under(path.parent, cache)
            raise StoreError(
                f"data.store={path} {f'has no {MANIFEST}' if path.exists() else 'does not exist'}"
                + (f". Stores found: {', '.join(found[:20])}" if found else "")
                + f". Build it with `python -m quickdraw.convert source=PATH store={path}` "
                "or set data.source=PATH"
            )
        n, seed = self.synthetic_per_class, self.synthetic_seed
        source = cache / "synthetic" / f"csv-n{n}-s{seed}"
        if not (source / MARKER).is_file():  # written last: absent if interrupted
            log.info("generating the synthetic doodle set in %s", source)
            synthetic.generate(source, per_class=n, seed=seed, replace=True)  # our cache
        log.info("converting %s into %s", source, path)
        convert(source, path, ConvertSettings(**dict(self.convert_settings or {})))
        return path

    def _ensure_current(self, path: Path, source: Path, timeout: float) -> Path:
        """The store of `source`, converted first where it lacks a file the source has or holds an
        older version of one; refused where the source lost files (the store has their drawings)."""
        if local_rank() != 0:  # the first process converts; the others wait until it is current
            _wait_for(path, timeout, lambda: bool(self._current(path, source, say=False)))
            return path
        current = self._current(path, source)
        if current:
            return path
        overwrite = current is not None and self._classes_changed(path, source)
        try:
            convert(source, path, self._settings(), overwrite=overwrite)
        except OSError as e:
            if e.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise
            raise StoreError(
                f"{path} must be converted from {source} again but cannot be written ({e}); "
                f"make it writable, or convert into a new folder and train on it: "
                f"{convert_command(source, Path('NEW_DIR'), self._settings_dict(), False)}, "
                "then data.store=NEW_DIR"
            ) from e
        log.info("data: store %s, up to date with %s", path, source)
        return path

    def _current(self, path: Path, source: Path, say: bool = True) -> bool | None:
        """True: `path` is up to date with `source` (or `source` is gone: the store is used
        as converted). False: it needs converting. None: not built yet. `say`: log which."""
        if not (path / MANIFEST).exists():
            return None
        if not source.exists():
            if say:
                log.warning(
                    "data: %s does not exist: using its store %s as converted", source, path
                )
            return True
        found = staleness(path, discover_sources(source))
        if found.removed:
            command = convert_command(source, path, self._settings_dict(), overwrite=True)
            raise StoreError(
                f"{path} was converted from {source}, which has changed since: {found} files. "
                "The store still holds the removed files' drawings; rebuild it from the source "
                f"as it is now: {command}"
            )
        if say and found.fresh:
            log.info("data: store %s, up to date with %s", path, source)
        elif say:
            log.warning(
                "data: %s has %s since %s was converted: converting them", source, found, path
            )
        return found.fresh

    def _classes_changed(self, path: Path, source: Path) -> bool:
        """Whether the classes read from `source` now differ from the store's: every label
        changes then, so the whole source is converted again."""
        settings = self._settings()
        if settings.classes:
            return False
        now = infer_classes(discover_sources(source), settings.max_bytes)
        had = Manifest.load(path).classes
        if sorted(now) == sorted(had):
            return False
        log.warning(
            "data: classes of %s changed (added: %s; gone: %s): converting all of it again",
            source,
            ", ".join(sorted(set(now) - set(had))) or "none",
            ", ".join(sorted(set(had) - set(now))) or "none",
        )
        return True

    def _settings_dict(self) -> dict:
        return dict(self.convert_settings or {})

    def _settings(self) -> ConvertSettings:
        return ConvertSettings(**self._settings_dict())


def ensure_store(**where: Any) -> Path:
    """The store that `where` ([`StoreSource`][quickdraw.data.sources.StoreSource]'s fields) names, built first when missing.

    A missing `store` folder without a `source` is an error (`StoreError`) that lists the
    stores found nearby and the command that builds one. A store of a `source` is brought up
    to date with it first, or refused (`StoreError`) when files were removed from the source.
    Non-zero local ranks wait for the first process of the node to finish (`TimeoutError`
    after a day).
    """
    return StoreSource(**where).ensure()


# The data config's keys that say where the store comes from (the rest say how epochs are served).
STORE_KEYS = tuple(StoreSource.__dataclass_fields__)


def ensure_store_of(data_config: dict[str, Any]) -> Path:
    """[`ensure_store`][quickdraw.data.sources.ensure_store] for a data config (`quickdraw/conf/data/*.yaml` as a dict; other keys ignored)."""
    return StoreSource(**{k: data_config[k] for k in STORE_KEYS if k in data_config}).ensure()


def _wait_for(store: Path, timeout: float, ready: Callable[[], bool] = lambda: True) -> None:
    """Until `store` has a manifest and `ready()` holds (raises what `ready` raises)."""
    t0 = time.monotonic()
    while not ((store / MANIFEST).exists() and ready()):
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"{store} was not built within {timeout:.0f} s")
        time.sleep(2)


def _stores_under(*folders: Path) -> list[str]:
    """Converted stores up to two levels below `folders`: what a mistyped data.store may have meant."""
    manifests = (
        m
        for d in folders
        if d.is_dir()
        for pattern in (f"*/{MANIFEST}", f"*/*/{MANIFEST}")
        for m in d.glob(pattern)
    )
    return sorted({str(m.parent) for m in manifests})
