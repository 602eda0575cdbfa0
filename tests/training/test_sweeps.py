"""Hydra multiruns from the command line: a local parallel sweep, DDP jobs, SLURM (Optuna searches:
test_search.py).

The sweeps run the real entry point on a tiny generated store; the SLURM test stops where
submitit would call sbatch and checks the script it would submit.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import hydra
import pytest
import submitit
from omegaconf import OmegaConf

from tests.helpers.commands import finish, start_train
from tests.helpers.configs import compose_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny(tiny_overrides) -> list[str]:
    """Overrides that make any run seconds long (one epoch), on the tiny generated store."""
    return [*tiny_overrides, "trainer.max_epochs=1"]


def run_cli(*args: str, cwd: Path, timeout: float = 300) -> tuple[int, str]:
    """`python -m quickdraw.train ARGS` in a session of its own, killed whole if it hangs."""
    return finish(start_train(*args, cwd=cwd), timeout)


def read_summary(sweep: Path) -> list[dict[str, str]]:
    with open(sweep / "summary.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_local_parallel_sweep_writes_job_folders_and_a_summary(tiny, tmp_path):
    sweep = tmp_path / "sweep"
    code, out = run_cli(
        "-m", "hydra/launcher=local", "experiment=resnet18,ensemble_mean",
        "model.optimizer.lr=1e-3,3e-3", "++model.log_images_every_n_epochs=0",
        *tiny, f"hydra.sweep.dir={sweep}", cwd=tmp_path,
    )  # fmt: skip
    assert code == 0, out[-4000:]
    assert "Joblib.Parallel(n_jobs=2" in out, "the jobs should run through joblib, 2 at a time"
    rows = read_summary(sweep)
    assert {(r["experiment"], float(r["model.optimizer.lr"])) for r in rows} == {
        (e, lr) for e in ("resnet18", "ensemble_mean") for lr in (1e-3, 3e-3)
    }
    for row in rows:
        job = sweep / row["job"]
        metrics = json.loads((job / "metrics.json").read_text())
        config = OmegaConf.load(job / ".hydra" / "config.yaml")
        assert config.experiment_name == row["experiment"] == metrics["experiment"]
        assert config.model.optimizer.lr == float(row["model.optimizer.lr"])
        for key in ("val/map3_best", "test/map3", "test/acc"):
            assert float(row[key]) == pytest.approx(metrics[key])
    assert "| job | experiment | model.optimizer.lr |" in (sweep / "summary.md").read_text()


@pytest.mark.slow
def test_ddp_job_in_a_multirun_needs_a_process_starting_launcher(tiny, tmp_path):
    code, out = run_cli(
        "-m", "trainer=ddp_cpu", *tiny, f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path
    )
    assert code != 0
    assert "hydra/launcher=local_ddp" in out, "the error should name the launcher to use"


@pytest.mark.slow
def test_local_ddp_launcher_starts_each_jobs_ranks(tiny, tmp_path):
    sweep = tmp_path / "sweep"
    code, out = run_cli(
        "-m", "hydra/launcher=local_ddp", "trainer=ddp_cpu", "trainer.devices=2", "test=false",
        *tiny, f"hydra.sweep.dir={sweep}", cwd=tmp_path,
    )  # fmt: skip
    assert code == 0, out[-4000:]
    assert json.loads((sweep / "0" / "metrics.json").read_text())["val/map3_best"] >= 0
    logs = {p.name: p.read_text() for p in (sweep / ".submitit").rglob("*_log.err")}
    assert len(logs) == 2, f"one submitit task per rank, got {sorted(logs)}"
    assert any("MEMBER: 2/2" in text for text in logs.values()), "rank 1 did not join"


def test_slurm_launcher_submits_one_task_per_gpu_on_every_node(tmp_path, monkeypatch):
    (tmp_path / "bin").mkdir()
    fake_srun = tmp_path / "bin" / "srun"  # submitit refuses to start without one on PATH
    fake_srun.write_text("#!/bin/sh\nexit 1\n")
    fake_srun.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    submitted = {}

    def capture(executor, fn, *job_args):  # stands in for sbatch
        submitted["sbatch"] = executor._executor._make_submission_file_text("CMD", "uid")
        submitted["requeues"] = executor._executor.max_num_timeout
        submitted["jobs"] = [list(a) for a in job_args][0]
        raise RuntimeError("submitted")

    monkeypatch.setattr(submitit.AutoExecutor, "map_array", capture)
    overrides = ["hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hardware=ddp"]
    overrides += ["trainer.devices=4", "trainer.num_nodes=2", f"hydra.sweep.dir={tmp_path}"]
    cfg = compose_config("train", overrides, return_hydra_config=True)
    launcher = hydra.utils.instantiate(cfg.hydra.launcher)
    launcher.setup(hydra_context=None, task_function=None, config=cfg)
    with pytest.raises(RuntimeError, match="submitted"):
        launcher.launch([["experiment=resnet18"], ["experiment=ensemble_mean"]], 0)
    sbatch = submitted["sbatch"]
    for line in ("--nodes=2", "--ntasks-per-node=4", "--gpus-per-node=4", "--partition=gpu"):
        assert f"#SBATCH {line}\n" in sbatch
    assert "#SBATCH --signal=USR2@" in sbatch, "no warning before the time limit: no requeue"
    assert submitted["requeues"] > 0
    assert submitted["jobs"] == [["experiment=resnet18"], ["experiment=ensemble_mean"]]
