"""What an MLflow run receives beyond Lightning's metrics: the run's config, figures and
best-checkpoint path as artifacts, and the Optuna study and trial a search job belongs to as tags.

Lightning's `MLFlowLogger` (https://lightning.ai/docs/pytorch/stable/api/lightning.pytorch.loggers.mlflow.html)
logs the resolved config as params (`log_hyperparams`) and every metric; the model logs its
validation figures through it ([`quickdraw.models.module`][quickdraw.models.module]). The rest
goes through MLflow's client (`MlflowClient.log_artifact`, `set_tag`,
https://mlflow.org/docs/latest/python_api/mlflow.client.html), at the end of a run, pruned ones too.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from quickdraw.core.runs import TRIAL_KEY, RunDir

log = logging.getLogger(__name__)


def mlflow_loggers(loggers: Sequence[Any]) -> list[Any]:
    """The `MLFlowLogger`s among a run's loggers (none when MLflow is not installed)."""
    try:
        from lightning.pytorch.loggers import MLFlowLogger
    except ImportError:
        return []
    return [lg for lg in loggers if isinstance(lg, MLFlowLogger)]


def search_tags(cfg: DictConfig) -> dict[str, str]:
    """`optuna.study` and `optuna.trial` for a job of an Optuna search; {} otherwise."""
    trial = cfg.get(TRIAL_KEY)
    if trial is None or not HydraConfig.initialized():
        return {}
    study = HydraConfig.get().sweeper.get("study_name")
    return {"optuna.study": str(study), "optuna.trial": str(trial)}


def start_tracking(loggers: Sequence[Any], cfg: DictConfig) -> None:
    """Tag each MLflow run with its search's study and trial, and name it `trial-N`."""
    tags = search_tags(cfg)
    for logger in mlflow_loggers(loggers):
        for key, value in tags.items():
            logger.experiment.set_tag(logger.run_id, key, value)
        if tags:
            logger.experiment.set_tag(
                logger.run_id, "mlflow.runName", f"trial-{tags['optuna.trial']}"
            )


def finish_tracking(
    loggers: Sequence[Any], cfg: DictConfig, run: RunDir, best: str, status: str
) -> None:
    """Artifacts of the finished run: `config/config.yaml` (the resolved config) and Hydra's
    `overrides.yaml` when the run has one,
    `best_checkpoint.txt` (its path; the file stays in the run folder), every PNG the run
    folder holds (prefix curve...), and the tags `best_ckpt` and `status`."""
    for logger in mlflow_loggers(loggers):
        client, run_id = logger.experiment, logger.run_id
        client.set_tag(run_id, "status", status)
        if best:
            client.set_tag(run_id, "best_ckpt", best)
            client.log_text(run_id, best + "\n", "best_checkpoint.txt")
        client.log_dict(run_id, OmegaConf.to_container(cfg, resolve=True), "config/config.yaml")
        if run.hydra_overrides.is_file():
            client.log_artifact(run_id, str(run.hydra_overrides), "config")
        for figure in sorted(run.path.glob("*.png")):
            client.log_artifact(run_id, str(figure), "figures")
        log.info("MLflow run %s (experiment %s)", run_id, logger.experiment_id)


def mlflow_logger(
    experiment_name: str,
    store_dir: str,
    tracking_uri: str | None = None,
    run_name: str | None = None,
    tags: dict[str, Any] | None = None,
    log_model: bool = False,
) -> Any:
    """Lightning's `MLFlowLogger` on `tracking_uri` (a server: `http://host:5000`, or any MLflow
    store URI), or, when None, a local store in `store_dir`: runs in `mlflow.db` (SQLite: MLflow
    3 keeps its file store for reading old runs only) and artifacts in `artifacts/`.

    `run_name`: None names the run after its run folder (`2026-12-05_17-09-20`).
    Look at a local store with `mlflow ui --backend-store-uri sqlite:///STORE_DIR/mlflow.db`.
    """
    from lightning.pytorch.loggers import MLFlowLogger

    if run_name is None and HydraConfig.initialized():
        # the run folder's name (its start time; a sweep's job number, until start_tracking
        # names it trial-N): MLflow's random names repeat, drawn after the run seeded `random`
        run_name = Path(HydraConfig.get().runtime.output_dir).name
    artifacts = None
    if not tracking_uri:
        folder = Path(store_dir).expanduser().absolute()
        folder.mkdir(parents=True, exist_ok=True)
        tracking_uri = f"sqlite:///{folder / 'mlflow.db'}"
        artifacts = (folder / "artifacts").as_uri()
    return MLFlowLogger(
        experiment_name=experiment_name, run_name=run_name, tracking_uri=tracking_uri,
        tags=dict(tags or {}), log_model=log_model, artifact_location=artifacts,
    )  # fmt: skip
