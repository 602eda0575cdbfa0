"""Where a store comes from: an existing folder, a source converted once into a cache, or the generated set.

:func:`ensure_store` is the one place that resolves, generates, converts and caches a store, for
training (the DataModule's ``prepare_data``), the report and the notebooks. Under several
processes (DDP ranks, SLURM tasks) only the first process of each node builds it; the others
wait for its manifest. Cached stores are named by schema version too: after an upgrade that
changes the schema, a cache is rebuilt beside the old one rather than refused.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quickdraw.data import synthetic
from quickdraw.data.convert import ConvertSettings, convert
from quickdraw.data.origin import MARKER
from quickdraw.data.schema import MANIFEST, SCHEMA_VERSION
from quickdraw.data.store import StoreError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoreSource:
    """Where a store comes from: the data config's ``STORE_KEYS``.

    ``store``: that folder. ``source``: converted into a cache under ``cache_dir/stores``, named
    by the source, the schema version and a hash of the source path and conversion settings.
    Neither: the generated doodle set (``synthetic_per_class`` drawings a class, ``synthetic_seed``)
    converted under ``cache_dir/synthetic``.
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
        """The store, built first when missing; see :func:`ensure_store`."""
        path = self.path
        if (path / MANIFEST).exists():
            return path
        if local_rank() != 0:
            _wait_for(path, timeout)
            return path
        cache = Path(self.cache_dir).expanduser()
        if self.store and not self.source:
            found = _stores_under(path.parent, cache)
            raise StoreError(
                f"data.store={path} {f'has no {MANIFEST}' if path.exists() else 'does not exist'}"
                + (f". Stores found: {', '.join(found[:20])}" if found else "")
                + f". Build it with `python -m quickdraw.convert source=PATH store={path}` "
                "or set data.source=PATH"
            )
        if self.source:
            source = Path(self.source).expanduser()
        else:
            n, seed = self.synthetic_per_class, self.synthetic_seed
            source = cache / "synthetic" / f"csv-n{n}-s{seed}"
            if not (source / MARKER).is_file():  # written last: absent if interrupted
                log.info("generating the synthetic doodle set in %s", source)
                synthetic.generate(source, per_class=n, seed=seed, replace=True)  # our cache
        log.info("converting %s into %s", source, path)
        convert(source, path, ConvertSettings(**dict(self.convert_settings or {})))
        return path


def ensure_store(**where: Any) -> Path:
    """The store that ``where`` (:class:`StoreSource`'s fields) names, built first when missing.

    A missing ``store`` folder without a ``source`` is an error (``StoreError``) that lists the
    stores found nearby and the command that builds one. Non-zero local ranks wait for the first
    process of the node to finish (``TimeoutError`` after a day).
    """
    return StoreSource(**where).ensure()


# The data config's keys that say where the store comes from (the rest say how epochs are served).
STORE_KEYS = tuple(StoreSource.__dataclass_fields__)


def ensure_store_of(data_config: dict[str, Any]) -> Path:
    """:func:`ensure_store` for a data config (``conf/data/*.yaml`` as a dict; other keys ignored)."""
    return StoreSource(**{k: data_config[k] for k in STORE_KEYS if k in data_config}).ensure()


def local_rank() -> int:
    """This process's rank on its node: Lightning's and torchrun's ``LOCAL_RANK``, SLURM's ``SLURM_LOCALID``."""
    return int(os.environ.get("LOCAL_RANK", os.environ.get("SLURM_LOCALID", 0)))


def _wait_for(store: Path, timeout: float) -> None:
    t0 = time.monotonic()
    while not (store / MANIFEST).exists():
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"{store} was not built within {timeout:.0f} s")
        time.sleep(2)


def _stores_under(*folders: Path) -> list[str]:
    """Converted stores up to two levels below ``folders``: what a mistyped data.store may have meant."""
    manifests = (
        m
        for d in folders
        if d.is_dir()
        for pattern in (f"*/{MANIFEST}", f"*/*/{MANIFEST}")
        for m in d.glob(pattern)
    )
    return sorted({str(m.parent) for m in manifests})
