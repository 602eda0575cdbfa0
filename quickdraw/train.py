"""Entry point: ``python -m quickdraw.train [experiment=NAME] ...`` fits, tests the best checkpoint, writes metrics.json."""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

import quickdraw  # noqa: F401  (registers the ${project_root:} resolver)
from quickdraw.utils import (
    instantiate_all,
    output_dir,
    resolve_ckpt_path,
    summarise_sweep,
    wait_for_store,
)

log = logging.getLogger("quickdraw.train")
# Our IterableDataset splits work per worker itself, so its __len__ is exact; the pytree notice is Lightning's own.
warnings.filterwarnings("ignore", message=".*`IterableDataset` has `__len__` defined.*")
warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*")


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit and test one configuration; returns the final metrics (also written to metrics.json)."""
    t0 = time.perf_counter()
    out = output_dir(cfg)
    L.seed_everything(cfg.seed, workers=True)

    datamodule = hydra.utils.instantiate(cfg.data)
    # Only the first process of a node converts; DDP children re-run this script and find the store ready.
    if int(os.environ.get("LOCAL_RANK", 0)) == 0:
        datamodule.prepare_data()
    else:
        wait_for_store(datamodule.resolved_store())
    datamodule.setup("fit")
    log.info("data: %s", datamodule.describe())

    model = hydra.utils.instantiate(
        cfg.model,
        _recursive_=False,  # net/optimizer/scheduler stay plain configs: the checkpoint rebuilds them
        num_classes=datamodule.num_classes,
        in_channels=datamodule.raster.channels,
        classes=datamodule.classes,
        raster=asdict(datamodule.raster),
    )
    callbacks = instantiate_all(cfg.get("callbacks"))
    loggers = instantiate_all(cfg.get("logger"))
    trainer: L.Trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False
    )
    for lg in loggers:
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), out)
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=False)
    metrics: dict[str, Any] = {
        k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1
    }

    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    if cfg.get("test") and not trainer.interrupted:
        tested = trainer.test(
            model, datamodule=datamodule, ckpt_path=best or None, weights_only=True
        )
        metrics.update({k: float(v) for k, v in tested[0].items()})
    if best and trainer.is_global_zero:
        link = Path(best).parent / "best.ckpt"
        link.unlink(missing_ok=True)
        link.symlink_to(Path(best).name)
    metrics.update(
        best_ckpt=best,
        epochs=trainer.current_epoch,
        seconds=round(time.perf_counter() - t0, 1),
        experiment=cfg.get("experiment_name"),
        sampling=datamodule.sampling,
    )
    if trainer.is_global_zero:
        (out / "metrics.json").write_text(json.dumps(metrics, indent=1, sort_keys=True))
        log.info("metrics: %s", {k: metrics[k] for k in sorted(metrics) if k.startswith("test/")})
        log.info("run folder: %s", out)
    return metrics


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    metrics = train(cfg)
    if HydraConfig.get().mode.name == "MULTIRUN":
        summarise_sweep(Path(HydraConfig.get().sweep.dir))
    value = metrics.get(cfg.get("optimized_metric"))
    return None if value is None else float(value)


if __name__ == "__main__":
    main()
