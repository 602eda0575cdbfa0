"""Weight averaging (an EMA of the weights) through Lightning's own callbacks, with the average what is tested and served.

Lightning's `WeightAveraging` keeps a
`torch.optim.swa_utils.AveragedModel` beside the model, swaps the averaged weights in for
every validation (so `val/map3` and hence `best.ckpt` judge the average) and writes them as the
checkpoint's `state_dict`, the trained ones going to `current_model_state` for resuming. Evaluate,
predict and the demo read `state_dict`: they serve the average.

One correction: on loading a checkpoint, Lightning's callback puts the *trained* weights back into
the model whenever it holds an average, which is right for resuming a fit but wrong for
`trainer.test(ckpt_path=best)` right after fitting (the test would score the raw weights). Outside
fitting this class leaves the checkpoint's `state_dict`, the average, in place.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import EMAWeightAveraging
from lightning.pytorch.trainer.states import TrainerFn


class _ServeAverage:
    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)


class EMA(_ServeAverage, EMAWeightAveraging):
    """Exponential moving average of the weights (and BatchNorm statistics), updated every step.

    `decay`: the average spans about `1 / (1 - decay)` optimiser steps; keep that well under the
    run's steps (0.999 = 1000 steps suits full-data epochs of thousands of steps, not short runs).
    """
