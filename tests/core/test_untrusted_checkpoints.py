"""Untrusted checkpoints: crafted files run no code through evaluate, predict or the demo; real ones still load.

Two ways in: a pickle whose `__reduce__` calls a function (stopped by `weights_only=True`), and
plain-data hyperparameters naming Hydra `_target_` callables that the model would instantiate
while being rebuilt (`weights_only` lets those through: they are only strings).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from quickdraw import cli
from quickdraw.core.checkpoints import CheckpointError
from quickdraw.models.loading import load_model
from tests.helpers.checkpoints import train_one_step
from tests.helpers.configs import compose_config
from tests.helpers.drawings import SQUARE, kaggle_row, write_csv

CLASSES = ["cat", "dog"]
RESNET = {"_target_": "quickdraw.models.components.resnet.resnet18"}
ENSEMBLE = {
    "_target_": "quickdraw.models.components.ensemble.Ensemble",
    "member": RESNET,
    "num_members": 2,
    "combine": "head",
}


@pytest.fixture(scope="module")
def real_ckpt(tmp_path_factory) -> Path:
    return train_one_step(RESNET, tmp_path_factory.mktemp("real") / "resnet.ckpt")


@pytest.fixture(scope="module")
def drawings(tmp_path_factory) -> Path:
    return write_csv(
        tmp_path_factory.mktemp("input") / "cat.csv",
        [kaggle_row(k, "cat", SQUARE) for k in range(1, 6)],
    )


class RunsCode:
    """Unpickling this calls `Path.touch(marker)`: the classic malicious-pickle payload."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def craft(real: Path, out: Path, how: str, marker: Path) -> Path:
    """A copy of a real checkpoint with one hostile change."""
    ckpt = torch.load(real, map_location="cpu", weights_only=True)
    hp = ckpt["hyper_parameters"]
    if how == "pickle":
        ckpt["callbacks"] = {"Sneaky": RunsCode(marker)}
    elif how == "loss_target":  # truncates (or creates) any file the user can write
        hp["loss"] = {
            "_target_": "quickdraw.models.losses.CrossEntropy",
            "label_smoothing": {"_target_": "builtins.open", "_args_": [str(marker), "w"]},
        }
    elif how == "member_target":  # the ensemble instantiates its member config recursively
        hp["net"] = {**ENSEMBLE, "member": {**RESNET, "x": {"_target_": "os.mkdir", "_args_": [str(marker)]}}}  # fmt: skip
    elif how == "attribute_path":  # a trusted-looking prefix that walks to another module
        hp["loss"] = {"_target_": "quickdraw.models.components.ensemble.Path.touch", "_args_": [str(marker)]}  # fmt: skip
    elif how == "instantiator":  # Lightning's own hook for custom constructors
        hp["_instantiator"] = "os.system"
    torch.save(ckpt, out)
    return out


ATTACKS = ["pickle", "loss_target", "member_target", "attribute_path", "instantiator"]


@pytest.fixture(scope="module", params=ATTACKS)
def hostile(request, real_ckpt, tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp(request.param)
    marker = root / "code-ran"
    return craft(real_ckpt, root / f"{request.param}.ckpt", request.param, marker), marker


def entry_config(name: str, **overrides) -> object:
    return compose_config(name, [f"{k}={v}" for k, v in overrides.items()])


def assert_refused(caplog, marker: Path, exit_info) -> None:
    assert exit_info.value.code == 2
    assert "refusing to load" in caplog.text
    assert not marker.exists(), "loading the checkpoint ran code from it"


def test_real_checkpoints_load(real_ckpt, tmp_path):
    model = load_model(real_ckpt)
    assert model.hparams.classes == CLASSES and not model.training
    ensemble = load_model(train_one_step(ENSEMBLE, tmp_path / "ensemble.ckpt"))
    assert ensemble.net.num_members == 2


def test_load_model_refuses_and_names_the_key(hostile):
    path, marker = hostile
    with pytest.raises(CheckpointError, match="refusing to load") as err:
        load_model(path)
    assert str(path) in str(err.value)
    if path.stem.endswith(("target", "path", "instantiator")):
        assert "hyper_parameters" in str(err.value), "the message names what was refused"
    assert not marker.exists()


def test_evaluate_refuses(hostile, drawings, caplog):
    path, marker = hostile
    cfg = entry_config("evaluate", ckpt_path=path, input=drawings)
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as exit_info:
        cli.evaluate.__wrapped__(cfg)
    assert_refused(caplog, marker, exit_info)


def test_predict_refuses(hostile, drawings, tmp_path, caplog):
    path, marker = hostile
    cfg = entry_config("predict", ckpt_path=path, input=drawings, output=tmp_path / "sub.csv")
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as exit_info:
        cli.predict.__wrapped__(cfg)
    assert_refused(caplog, marker, exit_info)
    assert not (tmp_path / "sub.csv").exists()


def test_demo_refuses(hostile, caplog):
    path, marker = hostile
    threads = torch.get_num_threads()  # the demo's main sets its own thread count
    try:
        with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as exit_info:
            cli.demo.__wrapped__(entry_config("demo", ckpt_path=path))
    finally:
        torch.set_num_threads(threads)
    assert_refused(caplog, marker, exit_info)


def test_predict_still_works_with_a_real_checkpoint(real_ckpt, drawings, tmp_path):
    out = tmp_path / "sub.csv"
    cli.predict.__wrapped__(
        entry_config("predict", ckpt_path=real_ckpt, input=drawings, output=out)
    )
    assert (
        out.read_text().splitlines()[0] == "key_id,word" and len(out.read_text().splitlines()) == 6
    )


@pytest.mark.slow
def test_predict_command_refuses_a_pickle_that_runs_code(real_ckpt, drawings, tmp_path):
    marker = tmp_path / "code-ran"
    path = craft(real_ckpt, tmp_path / "evil.ckpt", "pickle", marker)
    result = subprocess.run(
        [sys.executable, "-m", "quickdraw.predict", f"ckpt_path={path}", f"input={drawings}",
         f"output={tmp_path / 'sub.csv'}", f"hydra.run.dir={tmp_path / 'run'}"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**os.environ, "HYDRA_FULL_ERROR": "0"},
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    assert "refusing to load" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert not marker.exists()
