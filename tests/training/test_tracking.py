"""MLflow tracking (`logger=mlflow`, `logger=tensorboard_mlflow`): a run read back through MLflow's client."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.configs import compose_config

mlflow = pytest.importorskip("mlflow")


def test_mlflow_store_defaults_to_mlruns_under_the_output_root():
    cfg = compose_config("train", ["logger=mlflow"])
    assert cfg.logger.mlflow.tracking_uri is None
    assert cfg.logger.mlflow.store_dir == f"{cfg.paths.log_dir}/mlruns"
    both = compose_config("train", ["logger=tensorboard_mlflow"])
    assert set(both.logger) == {"tensorboard", "mlflow"}


def test_a_run_logs_config_metrics_figures_and_best_checkpoint_to_mlflow(tiny_config, tmp_path):
    from mlflow.tracking import MlflowClient

    from quickdraw.training.fit import train

    cfg = tiny_config(tmp_path / "run", "logger=tensorboard_mlflow", "trainer.max_epochs=1",
                      "test=false", "++model.log_images_every_n_epochs=1")  # fmt: skip
    metrics = train(cfg)
    store = f"sqlite:///{tmp_path / 'run' / 'mlruns' / 'mlflow.db'}"  # the default local store

    client = MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name(f"quickdraw-{cfg.experiment_name}")
    (run,) = client.search_runs([experiment.experiment_id])
    params = run.data.params
    assert float(params["model/optimizer/lr"]) == cfg.model.optimizer.lr  # the resolved config
    assert int(params["data/batch_size"]) == cfg.data.batch_size
    assert run.data.metrics["val/map3_best"] == pytest.approx(metrics["val/map3_best"])
    assert {"train/loss_epoch", "val/acc", "val/map3"} <= set(run.data.metrics)
    assert run.data.tags["best_ckpt"] == metrics["best_ckpt"]
    assert run.data.tags["status"] == "complete"

    def listed(path: str = "") -> set[str]:
        found = set()
        for item in client.list_artifacts(run.info.run_id, path):
            found |= listed(item.path) if item.is_dir else {item.path}
        return found

    artifacts = listed()
    assert "best_checkpoint.txt" in artifacts and "config/config.yaml" in artifacts
    assert any(p.startswith("figures/val/predictions/") and p.endswith(".png") for p in artifacts)
    text = client.download_artifacts(run.info.run_id, "best_checkpoint.txt", str(tmp_path))
    assert Path(text).read_text().strip() == metrics["best_ckpt"]


def test_an_mlflow_run_is_named_after_its_run_folder(tmp_path):
    """MLflow's random run names repeat from run to run: they are drawn after seeding `random`."""
    from hydra.core.hydra_config import HydraConfig

    from quickdraw.training.tracking import mlflow_logger

    cfg = compose_config("train", [], return_hydra_config=True)
    cfg.hydra.runtime.output_dir = str(tmp_path / "runs" / "2026-12-05_17-09-20")
    HydraConfig.instance().set_config(cfg)
    try:
        logger = mlflow_logger("e", str(tmp_path / "mlruns"))
        run = logger.experiment.get_run(logger.run_id)
        assert run.info.run_name == "2026-12-05_17-09-20"
    finally:
        HydraConfig.instance().cfg = None
