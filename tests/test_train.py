"""Training entry point: every experiment composes and runs; a short run produces checkpoints, logs and scores."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

from quickdraw.data import synthetic
from quickdraw.data.convert import ConvertSettings, convert
from quickdraw.train import train

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))
CLASSES = sorted(synthetic.CLASSES)[:4]


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    synthetic.generate(root / "csv", per_class=80, classes=CLASSES, seed=0, progress=False)
    convert(
        root / "csv",
        root / "store",
        ConvertSettings(val_fraction=0.2, test_fraction=0.2),
        progress=False,
    )
    return root / "store"


def compose_train(overrides: list[str], out: Path, store: Path) -> DictConfig:
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                f"data.store={store}",
                "data.per_class=16",
                "data.val_per_class=8",
                "data.test_per_class=8",
                "data.batch_size=16",
                "data.eval_batch_size=32",
                "data.raster.size=32",
                "data.num_workers=0",
                "trainer.accelerator=cpu",
                "callbacks.progress_bar.refresh_rate=0",
                *overrides,
            ],
        )
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
        cfg.paths.log_dir = str(out)
    return cfg


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_runs_fast_dev_run(experiment, tiny_store, tmp_path):
    cfg = compose_train([f"experiment={experiment}", "debug=fast"], tmp_path, tiny_store)
    metrics = train(cfg)
    assert {"test/acc", "test/acc3", "test/map3"} <= set(metrics)


def test_four_models_and_both_sampling_modes_are_experiments():
    assert {"resnet18", "resnet18_penalized", "ensemble_head", "ensemble_mean"} <= set(EXPERIMENTS)


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
