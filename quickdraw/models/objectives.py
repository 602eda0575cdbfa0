"""Training objectives: how a network's outputs and the criterion become the loss that is minimised.

The LightningModule calls `objective(net, x, target, criterion, batch) -> (loss, logits, parts)`
(`batch`: the whole loader batch, which a teacher reads in [`quickdraw.models.distill`][quickdraw.models.distill]); the
network stays a pure `nn.Module` that knows nothing of training. `criterion` is a
[`quickdraw.models.losses`][quickdraw.models.losses] loss (plain or class-weighted cross-entropy), `parts` are extra
scalars to log. Chosen by config (`model.objective`); with none given, single networks get
[`Plain`][quickdraw.models.objectives.Plain] and ensembles [`EnsembleMembers`][quickdraw.models.objectives.EnsembleMembers] without bootstrap.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

Criterion = Callable[..., Tensor]


class Plain:
    """The criterion on the network's output."""

    def __call__(
        self,
        net: nn.Module,
        x: Tensor,
        target: Tensor,
        criterion: Criterion,
        batch: Mapping[str, Any] | None = None,
    ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        logits = net(x)
        return criterion(logits, target), logits, {}


class EnsembleMembers:
    """Ensembles ([`Ensemble`][quickdraw.models.components.ensemble.Ensemble]): each member's own loss, plus the head's.

    combine="head": the head's loss, plus the members' mean own loss when members train. The
    members' own losses keep each a good classifier by itself: trained only through the head,
    members co-adapt (one can specialise or collapse and lean on the others), which removes the
    independent errors an ensemble relies on.
    combine="mean": the members' mean own loss only; averaging ensembles train their members
    independently, and the log-mean-prob output has no parameters of its own.
    bootstrap: member i's loss weights each sample by how often it appears in member i's own
    bootstrap resample of the batch (Breiman's bagging, per batch), which equals the loss on that
    resample without K extra forward passes (BatchNorm still sees the whole batch).
    """

    def __init__(self, bootstrap: bool = False) -> None:
        self.bootstrap = bootstrap

    def __call__(
        self,
        net: nn.Module,
        x: Tensor,
        target: Tensor,
        criterion: Criterion,
        batch: Mapping[str, Any] | None = None,
    ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        member_logits = net.forward_members(x)
        logits = net.combine_logits(member_logits)
        parts: dict[str, Tensor] = {}
        if net.head is not None:
            parts["train/loss_head"] = criterion(logits, target)
        if not net.freeze_members:
            k, n = member_logits.shape[:2]
            weights = bootstrap_weights(k, n, target.device) if self.bootstrap else [None] * k
            own = [criterion(z, target, w) for z, w in zip(member_logits, weights, strict=True)]
            parts["train/loss_members"] = torch.stack(own).mean()
        return sum(parts.values(), logits.new_zeros(())), logits, parts


def bootstrap_weights(k: int, n: int, device: torch.device | None = None) -> Tensor:
    """(k, n) multiplicities of n indices drawn with replacement, independently for each of k rows."""
    draws = torch.randint(n, (k, n), device=device)
    return torch.zeros(k, n, device=device).scatter_add_(1, draws, torch.ones(k, n, device=device))
