"""Training entry point: every experiment composes and runs; a short run produces checkpoints, logs and scores."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import DictConfig
from tiny import CLASSES, make_store
from tiny import compose_train as compose_tiny

from quickdraw.training import train

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory) -> Path:
    return make_store(tmp_path_factory.mktemp("synthetic"))


def compose_train(overrides: list[str], out: Path, store: Path) -> DictConfig:
    return compose_tiny(out, f"data.store={store}", "data.test_per_class=8", *overrides)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_runs_fast_dev_run(experiment, tiny_store, tmp_path):
    cfg = compose_train([f"experiment={experiment}", "debug=fast"], tmp_path, tiny_store)
    metrics = train(cfg)
    assert {"test/acc", "test/acc3", "test/map3"} <= set(metrics)


def test_four_models_and_both_sampling_modes_are_experiments():
    assert {"resnet18", "resnet18_penalized", "ensemble_head", "ensemble_mean"} <= set(EXPERIMENTS)


def test_penalised_loss_samples_a_fixed_n_unless_told_otherwise(tiny_store, tmp_path):
    # The class-weighted loss replaces adaptive sampling; both at once over-correct (README).
    cfg = compose_train(["experiment=resnet18_penalized"], tmp_path, tiny_store)
    assert cfg.data.sampling == "fixed" and cfg.callbacks.adaptive_sampler.mode == "fixed"
    assert cfg.model.loss._target_.endswith("ClassWeightedCrossEntropy")
    cfg = compose_train(
        ["experiment=resnet18_penalized", "data.sampling=adaptive"], tmp_path, tiny_store
    )
    assert cfg.callbacks.adaptive_sampler.mode == "adaptive"


@pytest.fixture(scope="session")
def smoke_run(tiny_store, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    cfg = compose_train(["experiment=smoke", "trainer.max_epochs=2"], out, tiny_store)
    train(cfg)
    return out


def test_run_folder_holds_checkpoints_logs_and_metrics(smoke_run):
    metrics = json.loads((smoke_run / "metrics.json").read_text())
    assert {"test/acc", "test/acc3", "test/map3", "val/map3_best", "best_ckpt"} <= set(metrics)
    assert 0.0 <= metrics["test/map3"] <= 1.0
    assert Path(metrics["best_ckpt"]).is_file()
    assert (smoke_run / "checkpoints" / "best.ckpt").resolve() == Path(
        metrics["best_ckpt"]
    ).resolve()
    assert (smoke_run / "checkpoints" / "last.ckpt").is_file()
    events = list((smoke_run / "tensorboard").rglob("events.out.tfevents.*"))
    assert events and {e.parent for e in events} == {smoke_run / "tensorboard"}, (
        "one TensorBoard run"
    )
    with open(smoke_run / "quotas.csv") as f:
        rows = list(csv.DictReader(f))
    assert {int(r["epoch"]) for r in rows} >= {0, 1}
    assert sorted({r["class"] for r in rows}) == CLASSES
    assert all(int(r["quota"]) >= 4 for r in rows), "floor: 0.25 x per_class 16"


def test_resume_from_last_continues_in_the_same_folder(smoke_run, tiny_store):
    cfg = compose_train(
        ["experiment=smoke", "trainer.max_epochs=3", "ckpt_path=last"], smoke_run, tiny_store
    )
    metrics = train(cfg)
    assert metrics["epochs"] == 3
    events = list((smoke_run / "tensorboard").rglob("events.out.tfevents.*"))
    assert {e.parent for e in events} == {smoke_run / "tensorboard"}, (
        "resume must not start a new TensorBoard run"
    )


def _cli(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args, f"hydra.run.dir={cwd}/hydra-{module}"],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def test_evaluate_and_predict_on_the_checkpoint(smoke_run, tiny_store, tmp_path):
    ckpt = smoke_run / "checkpoints" / "best.ckpt"
    csv_dir = tiny_store.parent / "csv"
    source = next(csv_dir.glob("*.csv.gz"))
    r = _cli("quickdraw.evaluate", f"ckpt_path={ckpt}", f"input={source}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "MAP@3" in r.stdout
    out = tmp_path / "sub.csv"
    r = _cli(
        "quickdraw.predict", f"ckpt_path={ckpt}", f"input={source}", f"output={out}", cwd=tmp_path
    )
    assert r.returncode == 0, r.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == "key_id,word" and len(lines) == 81
    key, words = lines[1].split(",")
    assert (
        key.isdigit() and len(words.split(" ")) == 3 and all(" " not in w for w in words.split(" "))
    )
    r = _cli("quickdraw.evaluate", f"ckpt_path={source}", f"input={source}", cwd=tmp_path)
    assert r.returncode == 2 and "not a checkpoint of this project" in r.stdout + r.stderr


def test_averaging_ensemble_of_frozen_runs_is_scored_without_training(
    smoke_run, tiny_store, tmp_path
):
    """members: [run, run] + freeze_members: nothing to train, yet a tested, loadable checkpoint."""
    import torch

    from quickdraw.checkpoints import load_model

    member = (smoke_run / "checkpoints" / "best.ckpt").resolve()
    cfg = compose_train(
        [
            "experiment=ensemble_mean",
            f"model.net.checkpoints=[{member},{member}]",
            "model.net.freeze_members=true",
        ],
        tmp_path,
        tiny_store,
    )
    metrics = train(cfg)
    assert metrics["epochs"] == 0 and Path(metrics["best_ckpt"]).name == "frozen.ckpt"
    assert {"val/map3", "test/acc", "test/map3"} <= set(metrics)
    # Two copies of one member average to that member: the saved ensemble predicts like it.
    ensemble, alone = load_model(metrics["best_ckpt"]), load_model(member)
    x = torch.rand(4, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ensemble(x).softmax(-1), alone(x).softmax(-1))
