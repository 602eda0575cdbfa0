"""Training one configuration: fit, test the best checkpoint, write the run folder's metrics.json.

`python -m quickdraw.train` ([`quickdraw.cli`][quickdraw.cli]) composes the config and calls [`train`][quickdraw.training.fit.train].
"""

from __future__ import annotations

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
from quickdraw.core.checkpoints import optimizer_steps, read_checkpoint
from quickdraw.core.errors import SettingError
from quickdraw.core.files import out_of_space
from quickdraw.core.runs import TRAIN, RunDir
from quickdraw.data.origin import combined_origin
from quickdraw.data.sources import ensure_store_of
from quickdraw.training.callbacks.pruning import OptunaPruning
from quickdraw.training.checkpoint_io import AtomicCheckpointIO
from quickdraw.training.settings_check import reconcile
from quickdraw.training.tracking import finish_tracking, start_tracking

log = logging.getLogger("quickdraw.train")
# Our IterableDataset splits work per worker itself, so its __len__ is exact; the pytree notice is Lightning's own.
warnings.filterwarnings("ignore", message=".*`IterableDataset` has `__len__` defined.*")
warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*")


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit and test one configuration; returns the final metrics (also written to metrics.json)."""
    t0 = time.perf_counter()
    adopt_submitit_ranks()
    run = RunDir(cfg.paths.output_dir)
    run.path.mkdir(parents=True, exist_ok=True)
    # Before any work: an earlier run's files in this folder are resumed or cleared, never mixed in.
    run.prepare_training(cfg.get("ckpt_path"), bool(cfg.get("overwrite")))
    reconcile(cfg)  # before any work: settings that cannot run together are adapted or refused
    L.seed_everything(cfg.seed, workers=True)

    # Built by the first process of each node; the other ranks wait for it (data.sources).
    ensure_store_of(OmegaConf.to_container(cfg.data, resolve=True))
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.setup("fit")

    model = hydra.utils.instantiate(
        cfg.model,
        _recursive_=False,  # net/optimizer/scheduler stay plain configs: the checkpoint rebuilds them
        num_classes=datamodule.num_classes,
        in_channels=datamodule.raster.channels,
        classes=datamodule.classes,
        raster=asdict(datamodule.raster),
        inputs=datamodule.input_configs(),
        data_origin=datamodule.origin,
    )
    datamodule.serve(
        model.training_input_names()
    )  # only the inputs the model (and a teacher) reads
    log.info("data: %s", datamodule.describe())
    ckpt_path = run.resume_checkpoint(cfg.get("ckpt_path"))
    if ckpt_path:  # the weights learnt the checkpoint's data too: its origin joins the store's
        before = read_checkpoint(ckpt_path).get("hyper_parameters", {}).get("data_origin")
        model.hparams.data_origin = combined_origin([model.hparams.data_origin, before])
    callbacks = instantiate_all(cfg.get("callbacks"))
    loggers = instantiate_all(cfg.get("logger"), resume_from=ckpt_path)
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
    if ckpt_path:
        log.info("resuming from %s", ckpt_path)
    for lg in loggers:
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    start_tracking(loggers, cfg)

    if any(p.requires_grad for p in model.parameters()):
        try:
            # Every state in our checkpoints is plain data: resuming unpickles nothing else.
            trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        except SIGTERMException as stop:
            # Lightning stops at the end of a batch; last.ckpt still holds the last complete epoch.
            log.warning("SIGTERM: stopped. %s", resume_hint(run.path))
            raise SystemExit(128 + signal.SIGTERM) from stop
        except Exception as error:
            if not out_of_space(error):  # quickdraw.cli says it in one line, with this hint
                log.error("training failed. %s", resume_hint(run.path))
            raise
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    else:
        best = _score_untrainable(trainer, model, datamodule, run)
    metrics: dict[str, Any] = {
        k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1
    }

    pruned = next(
        (cb.pruned for cb in callbacks if isinstance(cb, OptunaPruning) and cb.pruned), None
    )
    if cfg.get("test") and not trainer.interrupted and not pruned:
        tested = trainer.test(
            model, datamodule=datamodule, ckpt_path=best or None, weights_only=True
        )
        metrics.update({k: float(v) for k, v in tested[0].items()})
    if best and trainer.is_global_zero:
        run.link_best(best)
    metrics.update(
        best_ckpt=best,
        epochs=trainer.current_epoch,
        seconds=round(time.perf_counter() - t0, 1),
        experiment=cfg.get("experiment_name"),
        sampling=datamodule.sampling,
        status="pruned" if pruned else "complete",
    )
    if pruned:
        metrics["pruned"] = pruned
    if trainer.is_global_zero:
        run.write_metrics(metrics, TRAIN)
        finish_tracking(loggers, cfg, run, best, metrics["status"])
        log.info("metrics: %s", {k: metrics[k] for k in sorted(metrics) if k.startswith("test/")})
        log.info("run folder: %s", run.path)
    if pruned:  # the sweeper records the trial as PRUNED (Optuna's convention for a pruned trial)
        import optuna

        raise optuna.TrialPruned(pruned)
    return metrics


def instantiate_all(group: DictConfig | None, resume_from: str | None = None) -> list[Any]:
    """Every entry of a config group that has a `_target_` (callbacks, loggers).

    A TensorBoard logger of a resumed run gets `purge_step` (passed to its SummaryWriter): the
    resumed run redoes the interrupted epoch, and TensorBoard hides what the interrupted run
    logged from the checkpoint's step on instead of drawing both.
    """
    if not group:
        return []
    built = []
    for c in group.values():
        if not (isinstance(c, DictConfig) and "_target_" in c):
            continue
        extra = {}
        if resume_from and c._target_.endswith("TensorBoardLogger"):
            extra["purge_step"] = optimizer_steps(resume_from)
        built.append(hydra.utils.instantiate(c, **extra))
    return built


def adopt_submitit_ranks() -> None:
    """Tell Lightning the ranks of the tasks that submitit's local executor started.

    Lightning reads SLURM's variables itself, but not submitit-local's; without `LOCAL_RANK`
    each task would start more processes by re-running a command line that is not this job's.
    """
    if os.environ.get("SUBMITIT_EXECUTOR") != "local" or "LOCAL_RANK" in os.environ:
        return
    import submitit

    env = submitit.JobEnvironment()
    if env.num_tasks > 1:
        os.environ.update(
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(20000 + int(env.raw_job_id) % 20000),  # the job's pid: one port per job
            WORLD_SIZE=str(env.num_tasks),
            NODE_RANK="0",
            LOCAL_RANK=str(env.local_rank),
        )


def _score_untrainable(
    trainer: L.Trainer, model: L.LightningModule, datamodule, run: RunDir
) -> str:
    """A model with nothing to train (an averaging ensemble of frozen, loaded members) is
    validated and saved as is, so it is tested, evaluated, served and compared like any run."""
    log.info("nothing to train (every parameter is frozen): validating and saving the model as is")
    trainer.validate(model, datamodule=datamodule)
    path = run.frozen_checkpoint
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

    The command line is the whole sweep's (`-m` and every value), and the launching process
    outlives the job; jobs must get fresh processes from a launcher (submitit) instead.
    Lightning has no public name for "re-runs the command line", so this is the one place that
    checks its launcher class (`_SubprocessScriptLauncher`).
    """
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return
    strategy = trainer.strategy
    if isinstance(strategy.launcher, _SubprocessScriptLauncher) and not (
        strategy.cluster_environment.creates_processes_externally
    ):
        raise SettingError(
            "multi-process DDP in a multirun needs a launcher that starts each job's processes: "
            "hydra/launcher=local_ddp (this machine) or hydra/launcher=slurm (a cluster); "
            "see docs/guides/scaling.md"
        )


def resume_hint(out: Path) -> str:
    overrides = HydraConfig.get().overrides.task if HydraConfig.initialized() else []
    kept = [o for o in overrides if not o.startswith("ckpt_path=")]
    return "Resume from the last complete epoch: python -m quickdraw.train " + " ".join(
        [*kept, f"hydra.run.dir={out}", "ckpt_path=last"]
    )
