"""DDP on two CPU processes (gloo), started the way a user starts it: `python -m quickdraw.train trainer=ddp_cpu`.

Each rank records what it was served and what it decided; the test checks, for two epochs, that
the ranks split each epoch's sample without overlap, that both drew the next epoch with the same
quotas (computed from accuracy over the whole validation set), and that the logged metrics are
those of the whole validation set, not of one rank's half.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from quickdraw.data.sampling import epoch_rows
from quickdraw.data.store import Store
from quickdraw.metrics.hardness import adaptive_quotas
from quickdraw.training.callbacks.adaptive_sampler import AdaptiveSampler

TESTS = (
    Path(__file__).resolve().parents[2]
)  # the checkout: RankRecord imports as tests.training.test_ddp
NUM_CLASSES, VAL_PER_CLASS, BATCH = 4, 8, 16


class RankRecord(L.Callback):
    """Writes rank<k>.json: per epoch, the quotas used, the drawings served, local val predictions."""

    def __init__(self, out: str) -> None:
        self.out = Path(out)
        self.epochs: dict[str, dict] = {}

    def _epoch(self, trainer: L.Trainer) -> dict:
        empty = {"train_keys": [], "val_keys": [], "preds": [], "target": []}
        return self.epochs.setdefault(str(trainer.current_epoch), empty)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._epoch(trainer)["quotas"] = trainer.datamodule.quotas.tolist()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._epoch(trainer)["train_keys"] += batch["key_id"].tolist()

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dl_idx=0):
        if trainer.sanity_checking:
            return
        record = self._epoch(trainer)
        # What this rank scored: its rows (DDP padding left out) and the model's top-1 on them.
        valid = batch["valid"] if "valid" in batch else torch.ones_like(batch["label"], dtype=bool)
        with torch.no_grad():
            preds = pl_module(batch["image"]).argmax(-1)
        record["val_keys"] += batch["key_id"][valid].tolist()
        record["preds"] += preds[valid].tolist()
        record["target"] += batch["label"][valid].tolist()

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        sampler = next(cb for cb in trainer.callbacks if isinstance(cb, AdaptiveSampler))
        self._epoch(trainer).update(
            world_size=trainer.world_size,
            val_acc=float(trainer.callback_metrics["val/acc"]),
            class_acc=sampler.class_acc,
            next_quotas=sampler.quotas,
        )

    def on_fit_end(self, trainer, pl_module) -> None:
        (self.out / f"rank{trainer.global_rank}.json").write_text(json.dumps(self.epochs))


@pytest.fixture(scope="module")
def store(tiny_store) -> Path:
    assert len(Store(tiny_store).classes) == NUM_CLASSES
    return tiny_store


@pytest.fixture(scope="module")
def ddp_run(store, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ddp")
    command = [
        sys.executable, "-m", "quickdraw.train",
        "trainer=ddp_cpu", "trainer.devices=2", "trainer.max_epochs=2",
        f"data.store={store}", "data.per_class=16", f"data.val_per_class={VAL_PER_CLASS}",
        f"data.batch_size={BATCH}", "data.eval_batch_size=8", "data.raster.size=32",
        "callbacks.progress_bar.refresh_rate=0", "test=false",
        f"+callbacks.rank_record._target_={__name__}.RankRecord", f"+callbacks.rank_record.out={out}",
        f"hydra.run.dir={out / 'run'}",
    ]  # fmt: skip
    # Lightning starts rank 1 by re-running this command: both must be able to import RankRecord.
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    returncode, output = run_process_group(command, cwd=out, env=env, timeout=300)
    assert returncode == 0, output[-6000:]
    return out


def run_process_group(command: list[str], timeout: float, **kwargs) -> tuple[int, str]:
    """Run a command in a session of its own; on time-out kill it with every rank it started.

    Ranks that disagree (different epoch lengths, a missed collective) hang rather than fail.
    """
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True, **kwargs,
    )  # fmt: skip
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"DDP run hung for {timeout} s (ranks out of step?):\n{output[-3000:]}")
    return proc.returncode, output


def ranks(out: Path) -> list[dict]:
    return [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]


def accuracy(records: list[dict]) -> tuple[float, np.ndarray]:
    """Top-1 accuracy and per-class accuracy over the union of the ranks' validation shares."""
    preds = np.concatenate([r["preds"] for r in records])
    target = np.concatenate([r["target"] for r in records])
    hits = np.bincount(target, weights=preds == target, minlength=NUM_CLASSES)
    return float((preds == target).mean()), hits / np.bincount(target, minlength=NUM_CLASSES)


@pytest.mark.slow
def test_ranks_serve_disjoint_shares_of_each_epoch(ddp_run, store):
    cfg = OmegaConf.load(ddp_run / "run" / ".hydra" / "config.yaml")
    index = Store(store)["train"]
    for epoch, (a, b) in enumerate(zip(*(ranks(ddp_run)[r].values() for r in (0, 1)), strict=True)):
        assert a["world_size"] == 2
        assert a["quotas"] == b["quotas"], f"epoch {epoch}: ranks drew with different quotas"
        served = [a["train_keys"], b["train_keys"]]
        assert all(len(keys) == len(set(keys)) for keys in served), "a drawing served twice"
        assert not set(served[0]) & set(served[1]), f"epoch {epoch}: ranks overlap"
        assert len(served[0]) == len(served[1]) > 0, "ranks must take equal shares (DDP lockstep)"
        plan = epoch_rows(index, np.array(a["quotas"]), cfg.seed, epoch, cfg.data.shuffle_window)
        plan_keys = set(index.gather(plan).key_ids.tolist())
        union = set(served[0]) | set(served[1])
        assert union <= plan_keys, "served drawings outside the epoch's sample"
        # Only the remainder that does not fill a batch on every rank may be left out.
        assert len(plan_keys) - len(union) < 2 * BATCH


@pytest.mark.slow
def test_quotas_come_from_accuracy_over_all_ranks(ddp_run):
    cfg = OmegaConf.load(ddp_run / "run" / ".hydra" / "config.yaml")
    (a0, a1), (b0, b1) = (ranks(ddp_run)[r].values() for r in (0, 1))
    _, class_acc = accuracy([a0, b0])
    expected = adaptive_quotas(class_acc, cfg.data.per_class, cfg.callbacks.adaptive_sampler.floor)
    for rank_epoch0, rank_epoch1 in ((a0, a1), (b0, b1)):
        np.testing.assert_allclose(rank_epoch0["class_acc"], class_acc)
        assert rank_epoch0["next_quotas"] == expected.tolist()
        assert rank_epoch1["quotas"] == expected.tolist(), "epoch 1 drawn with other quotas"


@pytest.mark.slow
def test_validation_metrics_cover_both_ranks(ddp_run):
    for epoch_records in zip(*(ranks(ddp_run)[r].values() for r in (0, 1)), strict=True):
        a, b = epoch_records
        assert not set(a["val_keys"]) & set(b["val_keys"]), "a validation drawing scored twice"
        assert len(a["val_keys"]) + len(b["val_keys"]) == NUM_CLASSES * VAL_PER_CLASS
        acc, _ = accuracy([a, b])
        assert a["val_acc"] == pytest.approx(acc, abs=1e-6), "rank 0 logged a local accuracy"
        assert b["val_acc"] == pytest.approx(acc, abs=1e-6), "rank 1 logged a local accuracy"
