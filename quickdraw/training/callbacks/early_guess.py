"""Recognition of unfinished drawings during training: `val/early_auc_top1` at each validation.

A fixed subset of the validation split (`drawings` spread evenly over the classes, the same rows
every epoch) is scored on its growing prefixes ([`quickdraw.metrics.prefix`][quickdraw.metrics.prefix]) through
[`quickdraw.inference.runner.predict_proba`][quickdraw.inference.runner.predict_proba], the path evaluate takes, so any model that takes strokes
is scored alike. Logged: `val/early_auc_top1` (and `val/early_correct_before_end`), the prefix
curve as a TensorBoard figure (`val/prefix_curve`) and, in the run folder, the latest
validation's `prefix_curve.csv` (what `quickdraw.evaluation.report` plots beside other runs).

Cost on the default run (15 generated classes, 64 px, ResNet18, CPU): the 150 drawings give 342
prefixes (2.3 strokes a drawing), scored in 14.0 s while the validation pass itself (1,500
drawings) took 52.9 s, both on the 2 development cores shared with other jobs: about a quarter of a
validation, and (a training epoch being 4,500 drawings forward and backward, ~3x a forward each)
about 2 % of an epoch, so it is on by default. Real data has ~5 strokes a drawing and at 340
classes one drawing each (340 drawings, ~1,700 prefixes) against a 34,000-drawing validation set.
Rank 0 computes, the value is broadcast, every rank logs it: no rank waits on a collective the
others skip.
"""

from __future__ import annotations

import logging
import time

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger

from quickdraw.core.files import write_atomic
from quickdraw.core.runs import RunDir
from quickdraw.data.prefixes import check_kind
from quickdraw.data.sampling import fixed_rows
from quickdraw.data.strokes import StrokeBatch
from quickdraw.inference.runner import predict_proba
from quickdraw.metrics.prefix import PrefixRecorder, plot_prefix_curves

log = logging.getLogger(__name__)


class EarlyGuess(L.Callback):
    """`val/early_auc_top1` on `drawings` validation drawings, prefixes by `by`."""

    def __init__(
        self, drawings: int = 150, by: str = "strokes", chunk: int = 256, seed: int = 0
    ) -> None:
        self.drawings, self.by, self.chunk, self.seed = drawings, check_kind(by), chunk, seed
        self._subset: tuple[StrokeBatch, np.ndarray] | None = None

    def _fixed_subset(self, trainer: L.Trainer) -> tuple[StrokeBatch, np.ndarray]:
        if self._subset is None:
            dm = trainer.datamodule
            index = dm.store["val"]
            per_class = max(1, round(self.drawings / max(dm.num_classes, 1)))
            rows = fixed_rows(index, per_class, self.seed)
            got = index.gather(rows)
            self._subset = got.strokes, np.asarray(got.labels, np.int64)
        return self._subset

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.datamodule is None:
            return
        value = torch.tensor([float("nan"), float("nan")])
        if trainer.is_global_zero:
            value = torch.tensor(self._score(trainer, pl_module))
        value = trainer.strategy.broadcast(value, src=0)
        pl_module.log_dict(
            {"val/early_auc_top1": value[0], "val/early_correct_before_end": value[1]},
            on_epoch=True,
            sync_dist=False,
        )

    def _score(self, trainer: L.Trainer, pl_module: L.LightningModule) -> list[float]:
        start = time.perf_counter()
        strokes, labels = self._fixed_subset(trainer)
        proba = lambda s: predict_proba(pl_module, s)  # noqa: E731
        recorder = PrefixRecorder(self.by, list(trainer.datamodule.classes), proba, self.chunk)
        if len(strokes):
            recorder.add(strokes, labels)
        scores = recorder.scores()
        metrics = scores.metrics() if len(strokes) else {}
        curve = scores.curve()
        write_atomic(RunDir(trainer.default_root_dir).prefix_curve_file, curve.to_csv(index=False))
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger) and len(curve):
                fig = plot_prefix_curves({f"epoch {trainer.current_epoch}": curve})
                logger.experiment.add_figure("val/prefix_curve", fig, trainer.global_step)
        log.debug(
            "early guess: %d prefixes of %d drawings in %.2fs",
            len(scores.drawing),
            len(strokes),
            time.perf_counter() - start,
        )
        return [
            metrics.get("early/auc_top1", float("nan")),
            metrics.get("early/correct_before_end", float("nan")),
        ]
