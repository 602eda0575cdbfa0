"""Entry point: ``python -m quickdraw.convert source=PATH store=DIR`` (Hydra config conf/convert.yaml)."""

from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

import quickdraw  # noqa: F401  (registers the ${project_root:} resolver)
from quickdraw.data.convert import ConvertSettings, convert
from quickdraw.data.readers import QuickDrawFormatError

log = logging.getLogger("quickdraw.convert")


@hydra.main(version_base="1.3", config_path="../conf", config_name="convert")
def main(cfg: DictConfig) -> None:
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


if __name__ == "__main__":
    main()
