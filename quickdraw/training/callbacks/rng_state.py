"""EpochSeed: every epoch's random numbers are a function of (seed, epoch, rank), so a resumed run draws what the uninterrupted one drew.

The data plan already is such a function (see `data/sampling.py`); this callback does the same
for the global generators that training draws from (ensemble bootstrap resamples, dropout).
Saving the generators' states in checkpoints would not be enough: Lightning creates a fresh
epoch's train iterator (which takes a draw for its workers' seeds) after `on_train_epoch_start`,
but a resumed epoch's iterator before training starts, so a restored state would be off by a draw.
Reseeding at the first batch of each epoch is immune to what happened before it.
"""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """A 32-bit seed for one rank's epoch; neighbouring epochs and ranks get unrelated streams."""
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])


def seed_generators(seed: int) -> None:
    """Seed python's, numpy's legacy and torch's (CPU and every CUDA device) global generators."""
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002  (the legacy global generator is the one libraries use)
    torch.manual_seed(seed)


class EpochSeed(L.Callback):
    """Reseeds the global generators at the first training batch of every epoch."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if batch_idx == 0:
            seed_generators(epoch_seed(self.seed, trainer.current_epoch, trainer.global_rank))
