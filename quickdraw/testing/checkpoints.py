"""Checkpoints made without training, for the tests and the benchmarks (latency and loading do
not depend on the weights): the keys Lightning writes that `load_from_checkpoint` reads."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch


def save_module(module: L.LightningModule, path: Path) -> Path:
    """`module` as it is (its weights and its `save_hyperparameters`) saved to `path`."""
    state = {
        "state_dict": module.state_dict(),
        "hyper_parameters": dict(module.hparams),
        "pytorch-lightning_version": L.__version__,
    }
    torch.save(state, path)
    return path
