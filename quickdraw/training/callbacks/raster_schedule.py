"""Progressive resizing: the DataModule's raster size changed between epochs (e.g. 64 -> 128 px).

Small images early make the first, coarse epochs cheap (a 64 px epoch costs about a quarter of a
128 px one); the last epochs at full size fit the details. ResNets end in global average pooling,
so one network takes every size. The DataModule builds a new training loader every epoch from its
current `raster`, so the callback only has to set it before the next epoch's loader is built,
at the end of the epoch before (Lightning builds an epoch's loader before `on_train_epoch_start`).

What each checkpoint serves is the size its weights were last trained at: the model's
`hparams.raster` is updated at the start of each epoch, and evaluate, predict and the demo draw
at `hparams.raster`. The test after fitting draws at the datamodule's size at the end (the
schedule's last size): let the schedule reach its last size a few epochs before the end so that the
best checkpoint is one of those epochs.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, replace
from typing import Any

import lightning as L

from quickdraw.core.errors import SettingError

log = logging.getLogger(__name__)


class RasterSchedule(L.Callback):
    """`sizes[i]` px from epoch `epochs[i]` on (`epochs` ascending, starting at 0)."""

    def __init__(self, sizes: list[int], epochs: list[int]) -> None:
        if (
            len(sizes) != len(epochs)
            or not sizes
            or epochs[0] != 0
            or sorted(epochs) != list(epochs)
        ):
            raise SettingError(
                f"raster schedule: sizes {sizes} and epochs {epochs} need equal lengths, "
                "epochs ascending from 0"
            )
        self.sizes, self.epochs = [int(s) for s in sizes], [int(e) for e in epochs]
        self._next_epoch = 0  # the epoch whose loader is built next (restored on resume)
        self._trainer: L.Trainer | None = None

    def size_at(self, epoch: int) -> int:
        return next(
            s
            for s, e in zip(reversed(self.sizes), reversed(self.epochs), strict=True)
            if epoch >= e
        )

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit":
            self._trainer = trainer  # load_state_dict (resuming) comes after setup
            self._apply(trainer, self._next_epoch)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        raster = asdict(trainer.datamodule.raster)
        # A model that reads no image (a stroke-sequence network) records no raster.
        if pl_module.hparams.get("raster") and pl_module.hparams.raster != raster:
            pl_module.hparams.raster = raster  # what this epoch's checkpoints serve
            log.info("epoch %d trains at %d px", trainer.current_epoch, raster["size"])

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._next_epoch = trainer.current_epoch + 1
        self._apply(trainer, self._next_epoch)

    def _apply(self, trainer: L.Trainer, epoch: int) -> None:
        dm = trainer.datamodule
        if dm is not None and dm.raster.size != self.size_at(epoch):
            dm.raster = replace(dm.raster, size=self.size_at(epoch))

    def state_dict(self) -> dict[str, Any]:
        return {"next_epoch": self._next_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # last.ckpt is written at the end of an epoch, after on_train_epoch_end: resuming builds
        # the loader of next_epoch, which must be drawn at that epoch's size.
        self._next_epoch = state_dict["next_epoch"]
        if self._trainer is not None:
            self._apply(self._trainer, self._next_epoch)
