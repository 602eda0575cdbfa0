"""Ensembles of K independently initialised classifiers, combined by averaging or by a learned layer.

Members come from one ``member`` config (any ``_target_`` that takes ``num_classes`` and
``in_channels`` and returns logits) built K times, so diversity comes from the random init
(and, in the LightningModule, optional bootstrap resampling), or from checkpoints of earlier
single-model runs of this project.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

# QuickDrawModule stores its network as ``self.net``, so its weights live under this prefix.
NET_PREFIX = "net."


class Ensemble(nn.Module):
    """K members; ``forward`` gives the ensemble's (B, C) output, ``forward_members`` the (K, B, C) logits.

    combine="mean": output = log of the mean of the members' softmax probabilities (log-probs,
      which softmax and cross-entropy treat exactly like logits).
    combine="head": output = Linear(K*C -> C) over the concatenated member logits. Logits
      rather than 512-d features because this works for any member (no ``forward_features``
      needed), the head is small (K*C*C, vs K*512*C for features) and it is initialised to
      the average of the members' logits, so training starts from a working ensemble and can
      only learn per-class re-weighting of the members on top of it.
    """

    def __init__(
        self,
        member: dict,
        num_classes: int,
        in_channels: int,
        num_members: int = 3,
        combine: str = "mean",
        checkpoints: list[str] | None = None,
        freeze_members: bool = False,
    ) -> None:
        super().__init__()
        if combine not in ("mean", "head"):
            raise ValueError(f"combine must be 'mean' or 'head', got {combine!r}")
        if isinstance(member, DictConfig):
            member = OmegaConf.to_container(member, resolve=True)
        k = len(checkpoints) if checkpoints else num_members
        if k < 1:
            raise ValueError(f"an ensemble needs at least one member, got {k}")
        self.combine, self.num_classes, self.freeze_members = combine, num_classes, freeze_members
        self.members = nn.ModuleList(
            hydra.utils.instantiate(member, num_classes=num_classes, in_channels=in_channels)
            for _ in range(k)
        )
        for net, path in zip(self.members, checkpoints or [], strict=False):
            load_member(net, path)
        self.head = nn.Linear(k * num_classes, num_classes) if combine == "head" else None
        if self.head is not None:
            with torch.no_grad():
                self.head.weight.copy_(torch.eye(num_classes).repeat(1, k) / k)
                self.head.bias.zero_()
        if freeze_members:
            self.members.requires_grad_(False)
            if combine == "mean":
                warnings.warn(
                    "Ensemble(combine='mean', freeze_members=True) has no trainable parameters: "
                    "quickdraw.train validates, saves and tests it without training.",
                    stacklevel=2,
                )

    @property
    def num_members(self) -> int:
        return len(self.members)

    @property
    def trainable_members(self) -> bool:
        return not self.freeze_members

    def train(self, mode: bool = True) -> Ensemble:
        super().train(mode)
        # Frozen members must not drift through BatchNorm running statistics either.
        if self.freeze_members:
            self.members.eval()
        return self

    def forward_members(self, x: Tensor) -> Tensor:
        """(K, B, C) logits of each member on the same input."""
        return torch.stack([net(x) for net in self.members])

    def combine_logits(self, member_logits: Tensor) -> Tensor:
        """(K, B, C) member logits -> (B, C) ensemble output."""
        if self.head is None:
            k = member_logits.shape[0]
            return torch.logsumexp(member_logits.log_softmax(dim=-1), dim=0) - math.log(k)
        return self.head(member_logits.permute(1, 0, 2).flatten(1))

    def forward(self, x: Tensor) -> Tensor:
        return self.combine_logits(self.forward_members(x))

    def training_loss(
        self,
        member_logits: Tensor,
        logits: Tensor,
        target: Tensor,
        loss_fn: Callable,
        bootstrap: bool,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Training objective and its parts (for logging) from one forward pass.

        combine="head": the head's loss, plus the members' mean own loss when members train.
        The members' own losses keep each member a good classifier by itself: trained only
        through the head, members co-adapt (one can specialise or collapse and lean on the
        others), which removes the independent errors an ensemble relies on.
        combine="mean": the members' mean own loss only; averaging ensembles train their
        members independently, and the log-mean-prob output has no parameters of its own.
        bootstrap: member i's loss weights each sample by how often it appears in member i's
        own bootstrap resample of the batch, which equals the loss on that resample.
        """
        parts: dict[str, Tensor] = {}
        if self.head is not None:
            parts["train/loss_head"] = loss_fn(logits, target)
        if self.trainable_members:
            k, n = member_logits.shape[:2]
            weights = bootstrap_weights(k, n, target.device) if bootstrap else [None] * k
            own = [loss_fn(z, target, w) for z, w in zip(member_logits, weights, strict=True)]
            parts["train/loss_members"] = torch.stack(own).mean()
        return sum(parts.values(), logits.new_zeros(())), parts

    def portable_config(self, config: dict) -> dict:
        """This net's config with checkpoint paths replaced by the member count.

        A trained ensemble's own checkpoint holds every member's weights, so rebuilding it
        (demo, evaluation on another machine) must not need the original member files.
        """
        return {**config, "checkpoints": None, "num_members": self.num_members}


def bootstrap_weights(k: int, n: int, device: torch.device | None = None) -> Tensor:
    """(k, n) multiplicities of n indices drawn with replacement, independently for each of k rows."""
    draws = torch.randint(n, (k, n), device=device)
    return torch.zeros(k, n, device=device).scatter_add_(1, draws, torch.ones(k, n, device=device))


def load_member(net: nn.Module, path: str | Path) -> None:
    """Load a single-model QuickDrawModule checkpoint's ``net.*`` weights into ``net``."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors come in many types; all mean "not a checkpoint"
        raise ValueError(f"{path} is not a readable QuickDrawModule checkpoint: {err}") from err
    state = ckpt.get("state_dict") if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"{path} is not a Lightning checkpoint (no 'state_dict')")
    weights = {k[len(NET_PREFIX) :]: v for k, v in state.items() if k.startswith(NET_PREFIX)}
    if not weights:
        raise ValueError(f"{path} has no '{NET_PREFIX}*' weights: not a QuickDrawModule checkpoint")
    try:
        net.load_state_dict(weights)
    except RuntimeError as err:
        saved = ckpt.get("hyper_parameters", {}).get("net")
        raise ValueError(
            f"{path} does not fit the ensemble's member config (the checkpoint's net config was {saved}); "
            f"members must be single models with the same architecture, classes and channels:\n{err}"
        ) from err
