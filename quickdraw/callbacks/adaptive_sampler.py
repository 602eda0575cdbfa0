"""Adaptive per-class resampling: after each validation, class c gets N·(1 − acc_c) + floor·N drawings.

Hard classes get more drawings in the next epoch and easy ones never fall below ``floor·N``.
Per-class counts are summed across ranks before the quotas are computed, so every rank sets the
same quotas; they live in the DataModule's and this callback's checkpoint state, so a resumed run
continues with the quotas it had. Rank 0 also appends every epoch's quotas to
``<run>/quotas.csv`` (``epoch,class,val_acc,quota``), the exact history ``quickdraw.report`` plots.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger

log = logging.getLogger(__name__)


def adaptive_quotas(class_acc: np.ndarray, n: int, floor: float = 0.25) -> np.ndarray:
    """N·(1 − acc_c) + floor·N, rounded; classes without validation data (NaN) keep N."""
    acc = np.asarray(class_acc, np.float64)
    quotas = n * (1.0 - np.nan_to_num(acc, nan=0.0)) + floor * n
    quotas[np.isnan(acc)] = n
    return np.rint(quotas).astype(np.int64)


class AdaptiveSampler(L.Callback):
    """Sets the DataModule's per-class quotas from validation accuracy (``mode=adaptive``) or keeps N (``fixed``).

    Needs ``validation_step`` to return ``{"preds": (B,), "target": (B,)}``.
    """

    def __init__(self, mode: str = "adaptive", per_class: int | None = None, floor: float = 0.25):
        if mode not in ("adaptive", "fixed"):
            raise ValueError(f"mode must be 'adaptive' or 'fixed', not {mode!r}")
        self.mode, self.per_class, self.floor = mode, per_class, floor
        self.quotas: list[int] | None = None
        self.class_acc: list[float] | None = None
        self._correct: torch.Tensor | None = None
        self._total: torch.Tensor | None = None

    def _n(self, trainer: L.Trainer) -> int:
        return int(self.per_class or trainer.datamodule.per_class)

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        c = trainer.datamodule.num_classes
        self._correct = torch.zeros(c, dtype=torch.float64, device=pl_module.device)
        self._total = torch.zeros(c, dtype=torch.float64, device=pl_module.device)

    def on_validation_batch_end(
        self, trainer, pl_module, outputs: Any, batch, batch_idx, dataloader_idx=0
    ) -> None:
        if not isinstance(outputs, dict) or "preds" not in outputs:
            raise RuntimeError(
                "AdaptiveSampler needs validation_step to return {'preds': ..., 'target': ...}"
            )
        target = outputs["target"].to(self._total.device)
        hit = (outputs["preds"].to(target.device) == target).double()
        self._total += torch.bincount(target, minlength=len(self._total)).double()
        self._correct += torch.bincount(target, weights=hit, minlength=len(self._total))

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        correct = trainer.strategy.reduce(self._correct, reduce_op="sum").cpu().numpy()
        total = trainer.strategy.reduce(self._total, reduce_op="sum").cpu().numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            acc = np.where(total > 0, correct / np.maximum(total, 1), np.nan)
        n = self._n(trainer)
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
        path = Path(trainer.default_root_dir) / "quotas.csv"
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
