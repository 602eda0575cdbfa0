"""Training faults a user meets: a NaN loss, a full disk, a mistyped data path or experiment name.

Each must stop the run with a message that says what happened and what to do, and must leave the
last good checkpoint loadable.
"""

from __future__ import annotations

import errno
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.errors import MissingConfigException

from quickdraw.data.store import StoreError
from quickdraw.models.module import QuickDrawModule
from quickdraw.training.callbacks.nan_guard import NonFiniteLossError
from quickdraw.training.checkpoint_io import AtomicCheckpointIO
from quickdraw.training.fit import train

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = sorted(p.stem for p in (ROOT / "quickdraw/conf" / "experiment").glob("*.yaml"))
STEPS_PER_EPOCH = 4  # 4 classes x 16 drawings / batch 16, fixed sampling


@pytest.fixture(scope="module")
def compose_run(tiny_config, tiny_data_dir):
    """`compose_run(out, *overrides)`: two epochs of fixed sampling on the tiny store, with the
    data folder holding it as `paths.data_dir`."""
    return lambda out, *overrides: tiny_config(
        out,
        "experiment=smoke",
        f"paths.data_dir={tiny_data_dir}",
        "data.sampling=fixed",
        "trainer.max_epochs=2",
        "test=false",
        *overrides,
    )


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def checkpoints(out: Path) -> list[Path]:
    return sorted((out / "checkpoints").glob("*.ckpt"))


# -- NaN and inf ---------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_non_finite_loss_stops_with_the_step_and_last_good_checkpoint(
    compose_run, tmp_path, monkeypatch, bad
):
    real_step = QuickDrawModule.training_step

    def diverges(self, batch, batch_idx):
        loss = real_step(self, batch, batch_idx)
        return loss * bad if self.global_step == STEPS_PER_EPOCH + 1 else loss

    monkeypatch.setattr(QuickDrawModule, "training_step", diverges)
    with pytest.raises(NonFiniteLossError) as err:
        train(compose_run(tmp_path))
    message = str(err.value)
    assert f"global step {STEPS_PER_EPOCH + 1}" in message and "epoch 1" in message
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert str(last) in message or any(str(p) in message for p in checkpoints(tmp_path))
    for path in checkpoints(tmp_path):
        ckpt = load(path)
        assert ckpt["global_step"] == STEPS_PER_EPOCH, f"{path.name} was written after the NaN"
        assert all(torch.isfinite(t).all() for t in ckpt["state_dict"].values())


# -- a full disk ---------------------------------------------------------------------------------
def full_disk_after(n_saves: int, monkeypatch) -> None:
    """`torch.save` succeeds `n_saves` times, then writes half a file and fails as a full disk does."""
    real_save, calls = torch.save, []

    def save(obj, f, *args, **kwargs):
        calls.append(f)
        if len(calls) <= n_saves:
            return real_save(obj, f, *args, **kwargs)
        buf = io.BytesIO()
        real_save(obj, buf)
        half = buf.getvalue()[: len(buf.getvalue()) // 2]
        if hasattr(f, "write"):
            f.write(half)
        else:
            Path(f).write_bytes(half)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", save)


def test_full_disk_fails_clearly_and_keeps_the_last_good_checkpoint(compose_run, tmp_path, monkeypatch):  # fmt: skip
    full_disk_after(
        2, monkeypatch
    )  # epoch 0 writes its best and last.ckpt; epoch 1's first save fails
    with pytest.raises(OSError) as err:
        train(compose_run(tmp_path))
    message = str(err.value)
    assert err.value.errno == errno.ENOSPC
    assert "disk is full" in message and "intact" in message and "last.ckpt" in message
    saved = checkpoints(tmp_path)
    assert tmp_path / "checkpoints" / "last.ckpt" in saved
    for path in saved:
        assert load(path)["global_step"] == STEPS_PER_EPOCH, f"{path.name} is damaged"
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")], (
        "temporary files left behind"
    )


def test_a_failed_write_never_touches_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    io_ = AtomicCheckpointIO()
    io_.save_checkpoint({"epoch": 1, "w": torch.ones(1000)}, path)
    full_disk_after(0, monkeypatch)
    with pytest.raises(OSError, match="disk is full.*intact.*last.ckpt"):
        io_.save_checkpoint({"epoch": 2, "w": torch.zeros(1000)}, path)
    assert load(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


# -- mistyped names ------------------------------------------------------------------------------
def test_missing_store_lists_the_stores_that_exist(compose_run, tiny_data_dir, tmp_path):
    missing = tiny_data_dir / "stores" / "dooodles"
    with pytest.raises(StoreError) as err:
        train(compose_run(tmp_path, f"data.store={missing}"))
    message = str(err.value)
    assert str(missing) in message and "does not exist" in message
    assert str(tiny_data_dir / "stores" / "doodles") in message, (
        "the store that does exist is listed"
    )
    assert "python -m quickdraw.convert" in message


def test_missing_source_lists_what_its_folder_holds(compose_run, tiny_data_dir, tmp_path):
    missing = tiny_data_dir / "csv" / "train_simplifed.zip"
    with pytest.raises(FileNotFoundError) as err:
        train(compose_run(tmp_path, "data.store=null", f"data.source={missing}"))
    message = str(err.value)
    assert str(missing) in message
    assert all(p.name in message for p in sorted((tiny_data_dir / "csv").iterdir())[:3])


def test_unknown_experiment_lists_the_experiments(compose_run, tmp_path):
    with pytest.raises(MissingConfigException) as err:
        compose_run(tmp_path, "experiment=resnet81")
    assert all(name in str(err.value) for name in EXPERIMENTS)


@pytest.mark.slow
def test_unknown_experiment_on_the_command_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "quickdraw.train", "experiment=resnet81", f"hydra.run.dir={tmp_path}"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode != 0
    assert all(name in result.stderr for name in EXPERIMENTS), result.stderr[-2000:]
