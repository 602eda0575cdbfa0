"""NaNGuard: a NaN or infinite training loss stops the run before it reaches the weights, naming the step and the last good checkpoint.

Lightning would otherwise step the optimiser with NaN gradients and carry on: every later loss is
NaN, validation scores collapse, and the next checkpoint saves the ruined weights over a good one.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torch import Tensor

from quickdraw.core.errors import QuickDrawError


class NonFiniteLossError(QuickDrawError, FloatingPointError):
    """The training loss is NaN or infinite: the run stops, its checkpoints untouched."""


def last_good_checkpoint(trainer: L.Trainer) -> Path | None:
    """The newest checkpoint file any ModelCheckpoint callback has written (paths that exist only)."""
    paths = {
        Path(p)
        for cb in trainer.checkpoint_callbacks
        for p in (getattr(cb, "last_model_path", ""), getattr(cb, "best_model_path", ""))
        if p
    }
    existing = [p for p in paths if p.is_file()]
    return max(existing, key=lambda p: p.stat().st_mtime_ns) if existing else None


class NaNGuard(L.Callback):
    """Checks each training loss before its backward pass; any rank's non-finite loss stops every rank."""

    def on_before_backward(
        self, trainer: L.Trainer, pl_module: L.LightningModule, loss: Tensor
    ) -> None:
        bad = not bool(torch.isfinite(loss.detach()).all())
        # Every rank must stop together: a rank that stops alone leaves the others in an all-reduce.
        if not trainer.strategy.reduce_boolean_decision(bad, all=False):
            return
        ckpt = last_good_checkpoint(trainer)
        value = loss.detach().float().mean().item() if bad else "NaN or infinite on another rank"
        raise NonFiniteLossError(
            f"the training loss is {value} at global step {trainer.global_step} "
            f"(epoch {trainer.current_epoch}); stopped before the optimiser step, so no weights "
            f"took it. Last good checkpoint: {ckpt or 'none saved yet'}. "
            "Try a lower learning rate or gradient clipping (trainer.gradient_clip_val=1.0)."
        )
