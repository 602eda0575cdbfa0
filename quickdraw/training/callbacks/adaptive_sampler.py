"""Adaptive per-class resampling: after each validation, class c gets N·(1 − acc_c) + floor·N drawings.

Hard classes get more drawings in the next epoch and easy ones never fall below `floor·N`
(the rule and its policy for classes without validation data: [`quickdraw.metrics.hardness`][quickdraw.metrics.hardness]).
Per-class counts are summed across ranks before the quotas are computed (by the module's
confusion-count metric), so every rank sets the same quotas; they live in the DataModule's and this callback's checkpoint state, so a resumed run
continues with the quotas it had. Rank 0 also appends every epoch's quotas to
the run folder's `quotas.csv` (`epoch,class,val_acc,quota`), the exact history `quickdraw.evaluation.report` plots.
"""

from __future__ import annotations

import csv
import logging
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger

from quickdraw.core.runs import RunDir
from quickdraw.metrics.hardness import adaptive_quotas, class_hardness

log = logging.getLogger(__name__)


class AdaptiveSampler(L.Callback):
    """Sets the DataModule's per-class quotas from validation accuracy, or keeps N.

    The mode is the DataModule's `sampling` (`data.sampling`, its one home): `adaptive` or
    `fixed`. `per_class` overrides the DataModule's N.

    Reads the LightningModule's per-class validation accuracy (`val_class_accuracy()`, already
    reduced across ranks), so both follow one definition: [`quickdraw.metrics.hardness`][quickdraw.metrics.hardness].
    """

    def __init__(self, per_class: int | None = None, floor: float = 0.25):
        class_hardness(np.zeros(1), floor)  # a bad floor fails now, not after the first epoch
        self.per_class, self.floor = per_class, floor
        self.mode: str | None = None
        self.quotas: list[int] | None = None
        self.class_acc: list[float] | None = None

    def _n(self, trainer: L.Trainer) -> int:
        return int(self.per_class or trainer.datamodule.per_class)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        if not hasattr(pl_module, "val_class_accuracy"):
            raise TypeError(
                f"AdaptiveSampler needs a LightningModule with val_class_accuracy() "
                f"(QuickDrawModule); {type(pl_module).__name__} has none"
            )
        acc = np.asarray(pl_module.val_class_accuracy(), np.float64)
        n = self._n(trainer)
        self.mode = trainer.datamodule.sampling
        quotas = (
            adaptive_quotas(acc, n, self.floor) if self.mode == "adaptive" else np.full(len(acc), n)
        )
        self.class_acc, self.quotas = acc.tolist(), quotas.tolist()
        trainer.datamodule.set_quotas(quotas)
        self._log(trainer, pl_module, quotas)

    def _log(self, trainer: L.Trainer, pl_module: L.LightningModule, quotas: np.ndarray) -> None:
        q = torch.as_tensor(quotas, dtype=torch.float32)
        pl_module.log_dict(
            {
                "sampler/quota_min": q.min(),
                "sampler/quota_max": q.max(),
                "sampler/quota_mean": q.mean(),
            },
            on_epoch=True,
            sync_dist=False,
        )
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                if isinstance(logger, TensorBoardLogger):
                    logger.experiment.add_histogram("sampler/quotas", q, trainer.current_epoch)
            self._append_csv(trainer, quotas)

    def _append_csv(self, trainer: L.Trainer, quotas: np.ndarray) -> None:
        """One row per class for this epoch; a resumed run appends after its last finished epoch."""
        path = RunDir(trainer.default_root_dir).quotas_file
        new = not path.exists()
        with open(path, "a", newline="") as f:
            w = csv.writer(f)
            if new:
                w.writerow(["epoch", "class", "val_acc", "quota"])
            for name, acc, quota in zip(
                trainer.datamodule.classes, self.class_acc, quotas.tolist(), strict=True
            ):
                w.writerow([trainer.current_epoch, name, f"{acc:.6g}", quota])

    def state_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "quotas": self.quotas, "class_acc": self.class_acc}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.quotas, self.class_acc = state.get("quotas"), state.get("class_acc")
