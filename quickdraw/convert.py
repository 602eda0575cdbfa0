"""Entry point: ``python -m quickdraw.convert source=PATH store=DIR`` (Hydra config conf/convert.yaml).

``store=DIR export.to=OUT`` exports the store to sketch-rnn ``.npz`` files instead.
"""

from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

import quickdraw  # noqa: F401  (registers the ${project_root:} resolver)
from quickdraw.data.convert import ConvertSettings, convert
from quickdraw.data.formats.export import export_store
from quickdraw.data.readers import QuickDrawFormatError
from quickdraw.data.store import StoreError

log = logging.getLogger("quickdraw.convert")


@hydra.main(version_base="1.3", config_path="../conf", config_name="convert")
def main(cfg: DictConfig) -> None:
    if cfg.export.to:
        export(cfg)
        return
    settings = ConvertSettings(**OmegaConf.to_container(cfg.settings, resolve=True))
    source = hydra.utils.to_absolute_path(cfg.source)
    store = hydra.utils.to_absolute_path(cfg.store)
    try:
        manifest = convert(
            source,
            store,
            settings,
            workers=cfg.workers,
            overwrite=cfg.overwrite,
            verify=cfg.verify,
            progress=cfg.progress,
        )
    except (QuickDrawFormatError, FileNotFoundError, ValueError) as e:
        log.error("%s", e)
        sys.exit(2)
    kept = sum(manifest.rows.values())
    print(
        f"{store}: {kept} rows in {len(manifest.classes)} classes "
        f"({', '.join(f'{k} {v}' for k, v in manifest.rows.items())}); "
        f"bad rows {sum(manifest.bad_rows.values())}, filtered {sum(manifest.filtered.values())}"
    )


def export(cfg: DictConfig) -> None:
    store = hydra.utils.to_absolute_path(cfg.store)
    out = hydra.utils.to_absolute_path(cfg.export.to)
    try:
        written = export_store(
            store, out, list(cfg.export.classes), list(cfg.export.splits), cfg.progress
        )
    except (StoreError, ValueError) as e:
        log.error("%s", e)
        sys.exit(2)
    totals = {s: sum(c[s] for c in written.values()) for s in next(iter(written.values()))}
    print(
        f"{out}: {len(written)} sketch-rnn .npz files "
        f"({', '.join(f'{k} {v}' for k, v in totals.items())} drawings)"
    )


if __name__ == "__main__":
    main()
