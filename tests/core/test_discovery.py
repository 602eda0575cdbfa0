"""Which checkpoint evaluate, predict, export and the demo run with no ckpt_path: the rule of
quickdraw.core.discovery on cheap fake run folders, and the demo's choice end to end."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from quickdraw.core.discovery import best_run, choose_checkpoint, trial_reason
from quickdraw.core.errors import MissingPathError
from quickdraw.core.runs import RunDir

CLASSES = ["cat", "dog", "fish"]


def make_run(
    root: Path, name: str, started: float, map3: float | None = 0.3, *, experiment: str = "default",
    source: str = "data/kaggle.zip", classes=CLASSES, finished: bool = True, trainer: dict | None = None,
    overrides: tuple[str, ...] = (), via: str = "link",
) -> Path:  # fmt: skip
    """A training run folder as `quickdraw.train` leaves it, with a tiny stand-in checkpoint."""
    run = root / "runs" / name
    (run / "checkpoints").mkdir(parents=True)
    best = run / "checkpoints" / "epoch=1-step=9.ckpt"
    torch.save({"hyper_parameters": {"classes": list(classes)}}, best)
    metrics = {"best_ckpt": str(best), "experiment": experiment, "kind": "train"}
    if map3 is not None:
        metrics["val/map3_best"] = map3
    if via == "link":
        (run / "checkpoints" / "best.ckpt").symlink_to(best.name)
    if finished:
        (run / "metrics.json").write_text(json.dumps(metrics))
    cfg = {"experiment_name": experiment, "tags": [experiment], "data": {"source": source},
           "trainer": trainer or {"max_epochs": 3}}  # fmt: skip
    (run / ".hydra").mkdir()
    OmegaConf.save(OmegaConf.create(cfg), run / ".hydra" / "config.yaml")
    OmegaConf.save(OmegaConf.create(list(overrides)), run / ".hydra" / "overrides.yaml")
    os.utime(run / ".hydra" / "config.yaml", (started, started))
    return best.resolve()


def test_a_smoke_run_after_a_full_one_is_passed_over(tmp_path):
    full = make_run(tmp_path, "a-full", 1_000, map3=0.31)
    make_run(tmp_path, "b-full-worse", 2_000, map3=0.25)
    make_run(tmp_path, "c-smoke", 3_000, map3=0.95, experiment="smoke", source=None)
    choice = best_run(tmp_path)
    assert choice.path == full and choice.run.name == "a-full"
    assert "best val/map3 (0.3100)" in choice.reason and "of 2 finished runs" in choice.reason
    assert "1 trial run (smoke, fast_dev_run, debug) passed over" in choice.reason


def test_only_the_latest_data_and_classes_compete(tmp_path):
    make_run(tmp_path, "a-old-data", 1_000, map3=0.99, source="data/old.zip")
    make_run(tmp_path, "b-fewer-classes", 1_500, map3=0.98, classes=CLASSES[:2])
    latest = make_run(tmp_path, "c-latest", 2_000, map3=0.2)
    choice = best_run(tmp_path)
    assert choice.path == latest
    assert (
        "data/kaggle.zip, 3 classes" in choice.reason and "2 run(s) on other data" in choice.reason
    )


def test_unfinished_runs_do_not_count_and_ties_go_to_the_latest(tmp_path):
    make_run(tmp_path, "a", 1_000, map3=0.4)
    newer = make_run(tmp_path, "b", 2_000, map3=0.4, via="metrics")  # best named by metrics.json
    make_run(tmp_path, "c-running", 3_000, map3=0.9, finished=False)
    assert best_run(tmp_path).path == newer


def test_trial_runs_are_recognised_and_served_only_when_alone(tmp_path):
    runs = {
        "smoke": dict(experiment="smoke"),
        "fast": dict(trainer={"fast_dev_run": True}),
        "debug": dict(overrides=("debug=fast",)),
    }
    for i, (name, kw) in enumerate(runs.items()):
        make_run(tmp_path, name, 1_000 + i, **kw)
        assert trial_reason(RunDir(tmp_path / "runs" / name))
    choice = best_run(tmp_path)
    assert "only trial runs exist" in choice.reason
    assert trial_reason(RunDir(tmp_path / "runs" / "smoke")) == "experiment=smoke"


def test_ckpt_path_and_run_dir_win_and_no_run_says_how_to_train(tmp_path):
    with pytest.raises(MissingPathError, match="python -m quickdraw.train"):
        best_run(tmp_path)
    best = make_run(tmp_path, "a", 1_000)
    assert choose_checkpoint("x.ckpt", None, tmp_path).reason == "the checkpoint given as ckpt_path"
    assert choose_checkpoint(None, tmp_path / "runs" / "a", tmp_path).path == best
    empty = tmp_path / "runs" / "empty"
    empty.mkdir()
    with pytest.raises(MissingPathError, match="has no best checkpoint"):
        choose_checkpoint(None, empty, tmp_path)


def test_run_dir_at_an_unfinished_run_says_it_has_not_finished_and_how_to_resume(tmp_path):
    make_run(tmp_path, "running", 1_000, finished=False, via="metrics", overrides=("lr=0.1",))
    run = tmp_path / "runs" / "running"  # killed mid-training: its resume keeps its overrides
    again = r"has not finished \(no metrics.json\).*train it again \(`python -m quickdraw.train lr=0\.1`\)"
    with pytest.raises(MissingPathError, match=again):
        choose_checkpoint(None, run, tmp_path)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"epoch 0")
    with pytest.raises(MissingPathError, match=r"ckpt_path=last"):
        choose_checkpoint(None, run, tmp_path)


@pytest.mark.slow
def test_after_a_smoke_run_the_demo_serves_the_full_run_and_says_why(
    tiny_config, smoke_run, tmp_path
):
    """The issue's report: `experiment=smoke` after a full run made the demo serve the smoke run."""
    from quickdraw import cli
    from quickdraw.serving.app import build_app
    from quickdraw.serving.guesser import Guesser
    from quickdraw.training.fit import train
    from tests.helpers.configs import demo_config

    root = tmp_path / "train"
    full = root / "runs" / "full"
    train(tiny_config(full, "trainer.max_epochs=1"))
    shutil.copytree(smoke_run, root / "runs" / "smoke", symlinks=True)  # started after the full run
    choice = cli.chosen(demo_config(runs_root=root))
    assert choice.run == full and choice.path == RunDir(full).best_checkpoint()
    assert "1 trial run (smoke, fast_dev_run, debug) passed over" in choice.reason
    app = build_app(Guesser.from_checkpoint(choice.path), str(choice.path), why=choice.reason)
    shown = [b.value for b in app.blocks.values() if getattr(b, "elem_id", None) == "why"]
    assert shown == [f"Serving {choice.reason}."]
