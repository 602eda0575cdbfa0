"""Exact resume: a run stopped mid-epoch (SIGTERM or a crash) and resumed ends where the uninterrupted run ends.

"Exact" is checked where a user would see a difference: the per-class quotas of every epoch and
those the redone epoch's validation sets for the next one, the final weights and metrics, and the
TensorBoard curves (one run folder, no doubled steps). The model is the bootstrap ensemble, whose
training draws from torch's global generator, so a resume that redrew differently would diverge.
"""

from __future__ import annotations

import json
import os
import random
import signal
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from quickdraw.core.runs import RunDir
from quickdraw.training.callbacks.rng_state import epoch_seed, seed_generators
from quickdraw.training.fit import train

ROOT = Path(__file__).resolve().parents[2]
EPOCHS = 2
STOP_EPOCH = 1  # interrupted in its second batch; the resumed run redoes it from last.ckpt
# A one-member bootstrap ensemble: training draws random numbers (its resamples) at the cost of one
# ResNet, so a resume that drew differently would show.
MODEL = ["experiment=ensemble_mean", "model.net.num_members=1"]


class QuotaLog(L.Callback):
    """Appends each training epoch's quotas (those its sample is drawn with) to a JSON-lines file."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        record = {"epoch": trainer.current_epoch, "quotas": trainer.datamodule.quotas.tolist()}
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")


class Interrupt(L.Callback):
    """Stops training in the middle of an epoch, the way a cluster or a bug would."""

    def __init__(self, epoch: int, batch: int, how: str) -> None:
        self.epoch, self.batch, self.how = epoch, batch, how

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if (trainer.current_epoch, batch_idx) != (self.epoch, self.batch):
            return
        if self.how == "sigterm":
            os.kill(os.getpid(), signal.SIGTERM)  # Lightning's handler stops after this batch
        else:
            raise RuntimeError("simulated crash")


@pytest.fixture(scope="module")
def compose_run(tiny_config):
    """`compose_run(out, *overrides)`: the run compared, on the tiny store, writing into `out`."""
    return lambda out, *overrides: tiny_config(
        out,
        *MODEL,
        f"trainer.max_epochs={EPOCHS}",
        "trainer.log_every_n_steps=1",
        "++model.log_images_every_n_epochs=0",
        "test=false",
        f"+callbacks.quota_log._target_={__name__}.QuotaLog",
        f"+callbacks.quota_log.path={out / 'quotas.jsonl'}",
        *overrides,
    )


def quotas_by_epoch(out: Path) -> dict[int, list[int]]:
    """The quotas each epoch was drawn with; a redone epoch's later record wins."""
    records = [json.loads(line) for line in (out / "quotas.jsonl").read_text().splitlines()]
    return {r["epoch"]: r["quotas"] for r in records}


def tensorboard_steps(out: Path, tag: str = "train/loss_step") -> list[int]:
    """The steps TensorBoard shows for a scalar (it hides what a resumed run purged)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    runs = {p.parent for p in (out / "tensorboard").rglob("events.out.tfevents.*")}
    assert runs == {out / "tensorboard"}, f"expected one TensorBoard run, found {sorted(runs)}"
    acc = EventAccumulator(str(out / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    return [e.step for e in acc.Scalars(tag)]


def final_state(out: Path) -> dict:
    return torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def uninterrupted(compose_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("uninterrupted")
    train(compose_run(out))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("how", ["sigterm", "crash"])
def test_interrupted_run_resumes_exactly(how, uninterrupted, compose_run, tmp_path):
    stop = [
        f"+callbacks.interrupt._target_={__name__}.Interrupt",
        f"+callbacks.interrupt.epoch={STOP_EPOCH}",
        "+callbacks.interrupt.batch=1",
        f"+callbacks.interrupt.how={how}",
    ]
    if how == "sigterm":
        with pytest.raises(SystemExit) as stopped:
            train(compose_run(tmp_path, *stop))
        assert stopped.value.code == 128 + signal.SIGTERM, "a stopped run must not exit with 0"
    else:
        with pytest.raises(RuntimeError, match="simulated crash"):
            train(compose_run(tmp_path, *stop))
    assert final_state(tmp_path)["epoch"] == STOP_EPOCH - 1, "last.ckpt: the last complete epoch"

    # ckpt_path=last is the documented way to resume; auto does the same when last.ckpt exists.
    resume = "ckpt_path=last" if how == "sigterm" else "ckpt_path=auto"
    metrics = train(compose_run(tmp_path, resume))

    assert quotas_by_epoch(tmp_path) == quotas_by_epoch(uninterrupted)
    ref_state, state = final_state(uninterrupted), final_state(tmp_path)
    # The quotas the next epoch would use come from validating the redone epoch's model.
    next_quotas = ref_state["QuickDrawDataModule"]["quotas"]
    assert len(set(next_quotas)) > 1, "the quotas should have adapted (else this test is too weak)"
    assert state["QuickDrawDataModule"]["quotas"] == next_quotas
    assert (state["epoch"], state["global_step"]) == (ref_state["epoch"], ref_state["global_step"])
    for name, tensor in ref_state["state_dict"].items():
        torch.testing.assert_close(state["state_dict"][name], tensor, msg=f"{name} diverged")
    reference = json.loads((uninterrupted / "metrics.json").read_text())
    assert metrics["val/map3"] == pytest.approx(reference["val/map3"], abs=1e-6)
    assert tensorboard_steps(tmp_path) == tensorboard_steps(uninterrupted), (
        "redone steps shown twice"
    )


def test_ckpt_path_auto_starts_fresh_without_a_checkpoint(tmp_path):
    assert RunDir(tmp_path).resume_checkpoint("auto") is None
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"")
    assert RunDir(tmp_path).resume_checkpoint("auto") == str(tmp_path / "checkpoints" / "last.ckpt")
    with pytest.raises(FileNotFoundError, match="hydra.run.dir"):
        RunDir(tmp_path / "elsewhere").resume_checkpoint("last")


def test_epoch_seed_depends_on_seed_epoch_and_rank_only():
    seeds = {epoch_seed(s, e, r) for s in (0, 1) for e in (0, 1, 2) for r in (0, 1)}
    assert len(seeds) == 12, "different (seed, epoch, rank) must give different streams"
    draws = []
    for _ in range(2):
        seed_generators(epoch_seed(42, 3, 1))
        draws.append((torch.rand(4), np.random.rand(4), random.random()))  # noqa: NPY002
    assert torch.equal(draws[0][0], draws[1][0])
    assert np.array_equal(draws[0][1], draws[1][1])
    assert draws[0][2] == draws[1][2]
