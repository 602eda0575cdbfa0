"""Entry point: ``python -m quickdraw.train [experiment=NAME] ...`` fits, tests the best checkpoint, writes metrics.json."""

from __future__ import annotations

import json
import logging
import os
import signal
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.strategies.launchers import _SubprocessScriptLauncher
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

import quickdraw  # noqa: F401  (registers the ${project_root:} resolver)
from quickdraw.checkpoint_io import AtomicCheckpointIO
from quickdraw.settings_check import reconcile
from quickdraw.utils import (
    adopt_submitit_ranks,
    continue_loggers,
    instantiate_all,
    output_dir,
    resolve_ckpt_path,
    wait_for_store,
)

log = logging.getLogger("quickdraw.train")
# Our IterableDataset splits work per worker itself, so its __len__ is exact; the pytree notice is Lightning's own.
warnings.filterwarnings("ignore", message=".*`IterableDataset` has `__len__` defined.*")
warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*")


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit and test one configuration; returns the final metrics (also written to metrics.json)."""
    t0 = time.perf_counter()
    adopt_submitit_ranks()
    out = output_dir(cfg)
    reconcile(cfg)  # before any work: settings that cannot run together are adapted or refused
    L.seed_everything(cfg.seed, workers=True)

    datamodule = hydra.utils.instantiate(cfg.data)
    # Only the first process of a node converts; the other ranks (Lightning's re-run children,
    # torchrun's or SLURM's tasks, which set SLURM_LOCALID rather than LOCAL_RANK) wait for it.
    if int(os.environ.get("LOCAL_RANK", os.environ.get("SLURM_LOCALID", 0))) == 0:
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
        cfg.trainer,
        callbacks=callbacks,
        logger=loggers or False,
        plugins=[AtomicCheckpointIO()],  # a full disk or a kill never leaves half a checkpoint
    )
    _refuse_relaunch_in_multirun(trainer)
    datamodule.trainer = (
        trainer  # world size for the per-process share (Lightning sets it again in fit)
    )
    datamodule.check_enough_data(needs_validation(trainer, datamodule))
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), out)
    if ckpt_path:
        log.info("resuming from %s", ckpt_path)
        continue_loggers(loggers, ckpt_path)
    for lg in loggers:
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    if any(p.requires_grad for p in model.parameters()):
        try:
            # Every state in our checkpoints is plain data: resuming unpickles nothing else.
            trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        except SIGTERMException as stop:
            # Lightning stops at the end of a batch; last.ckpt still holds the last complete epoch.
            log.warning("SIGTERM: stopped. %s", _resume_hint(out))
            raise SystemExit(128 + signal.SIGTERM) from stop
        except Exception:
            log.error("training failed. %s", _resume_hint(out))
            raise
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    else:
        best = _score_untrainable(trainer, model, datamodule, out)
    metrics: dict[str, Any] = {
        k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1
    }

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


def _score_untrainable(trainer: L.Trainer, model: L.LightningModule, datamodule, out: Path) -> str:
    """A model with nothing to train (an averaging ensemble of frozen, loaded members) is
    validated and saved as is, so it is tested, evaluated, served and compared like any run."""
    log.info("nothing to train (every parameter is frozen): validating and saving the model as is")
    trainer.validate(model, datamodule=datamodule)
    path = out / "checkpoints" / "frozen.ckpt"
    trainer.save_checkpoint(path, weights_only=False)  # the usual full checkpoint (and no log line)
    return str(path) if trainer.is_global_zero else ""


def needs_validation(trainer: L.Trainer, datamodule) -> bool:
    """Whether the run relies on validation: adaptive quotas, a monitored checkpoint, early stopping."""
    monitored = any(
        getattr(cb, "monitor", None)
        for cb in trainer.callbacks
        if isinstance(cb, ModelCheckpoint | EarlyStopping)
    )
    return trainer.limit_val_batches != 0 and (datamodule.sampling == "adaptive" or monitored)


def _refuse_relaunch_in_multirun(trainer: L.Trainer) -> None:
    """DDP that starts its ranks by re-running the command line cannot run inside a multirun.

    The command line is the whole sweep's (``-m`` and every value), and the launching process
    outlives the job; jobs must get fresh processes from a launcher (submitit) instead.
    """
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return
    strategy = trainer.strategy
    if isinstance(strategy.launcher, _SubprocessScriptLauncher) and not (
        strategy.cluster_environment.creates_processes_externally
    ):
        raise RuntimeError(
            "multi-process DDP in a multirun needs a launcher that starts each job's processes: "
            "hydra/launcher=local_ddp (this machine) or hydra/launcher=slurm (a cluster); "
            "see docs/scaling.md"
        )


def _resume_hint(out: Path) -> str:
    overrides = HydraConfig.get().overrides.task if HydraConfig.initialized() else []
    kept = [o for o in overrides if not o.startswith("ckpt_path=")]
    return "Resume from the last complete epoch: python -m quickdraw.train " + " ".join(
        [*kept, f"hydra.run.dir={out}", "ckpt_path=last"]
    )


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    metrics = train(cfg)
    value = metrics.get(cfg.get("optimized_metric"))
    return None if value is None else float(value)


if __name__ == "__main__":
    main()
