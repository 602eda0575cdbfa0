"""Ensembles of K independently initialised classifiers, combined by averaging or by a learned layer.

Members come from one `member` config (any `_target_` that takes `num_classes` and
`in_channels` and returns logits) built K times, so diversity comes from the random init
(and, in the LightningModule, optional bootstrap resampling), or from a `members` list of
different configs, each reading its own input (`input: temporal`, [`quickdraw.models.components.factory`][quickdraw.models.components.factory]):
a ResNet18 on gray images, one on temporal images and a stroke-sequence network vote together.
Either can start from checkpoints of earlier single-model runs of this project. How the ensemble
is trained lives in [`quickdraw.models.objectives`][quickdraw.models.objectives].
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import Tensor, nn

from quickdraw.core.checkpoints import load_net_weights
from quickdraw.core.errors import SettingError
from quickdraw.data.inputs import IMAGE
from quickdraw.models.components.factory import build_net, net_input


class Ensemble(nn.Module):
    """K members; `forward` gives the ensemble's (B, C) output, `forward_members` the (K, B, C) logits.

    combine="mean": output = log of the mean of the members' softmax probabilities (log-probs,
      which softmax and cross-entropy treat exactly like logits).
    combine="head": output = Linear(K*C -> C) over the concatenated member logits. Logits
      rather than 512-d features because this works for any member (no `forward_features`
      needed), the head is small (K*C*C, vs K*512*C for features) and it is initialised to
      the average of the members' logits, so training starts from a working ensemble and can
      only learn per-class re-weighting of the members on top of it.
    """

    routes_inputs = True  # members read their own inputs (quickdraw.models.components.factory)

    def __init__(
        self,
        member: dict | None,
        num_classes: int,
        in_channels: int | Mapping[str, int],
        num_members: int = 3,
        combine: str = "mean",
        checkpoints: list[str] | None = None,
        freeze_members: bool = False,
        members: list[dict] | None = None,
    ) -> None:
        super().__init__()
        if combine not in ("mean", "head"):
            raise SettingError(f"combine must be 'mean' or 'head', got {combine!r}")
        configs = _member_configs(member, members, checkpoints, num_members)
        k = len(configs)
        if k < 1:
            raise SettingError(f"an ensemble needs at least one member, got {k}")
        channels = {IMAGE: in_channels} if isinstance(in_channels, int) else dict(in_channels)
        self.combine, self.num_classes, self.freeze_members = combine, num_classes, freeze_members
        self.members = nn.ModuleList(build_net(c, num_classes, channels) for c in configs)
        # The loaded members' own hyperparameters: the module checks their inputs against its own.
        self.member_hparams: list[dict[str, Any]] = [
            load_net_weights(net, path)
            for net, path in zip(self.members, checkpoints or [], strict=False)
        ]
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

    def train(self, mode: bool = True) -> Ensemble:
        super().train(mode)
        # Frozen members must not drift through BatchNorm running statistics either.
        if self.freeze_members:
            self.members.eval()
        return self

    def forward_members(self, x: Tensor | Mapping[str, Any]) -> Tensor:
        """(K, B, C) logits of the members, each on its own named input (`x` a dict), or all on `x`."""
        if isinstance(x, Mapping):
            return torch.stack([net(net_input(net, x)) for net in self.members])
        return torch.stack([net(x) for net in self.members])

    def combine_logits(self, member_logits: Tensor) -> Tensor:
        """(K, B, C) member logits -> (B, C) ensemble output."""
        if self.head is None:
            k = member_logits.shape[0]
            return torch.logsumexp(member_logits.log_softmax(dim=-1), dim=0) - math.log(k)
        return self.head(member_logits.permute(1, 0, 2).flatten(1))

    def forward(self, x: Tensor) -> Tensor:
        return self.combine_logits(self.forward_members(x))

    def portable_config(self, config: dict) -> dict:
        """This net's config with checkpoint paths replaced by the member count.

        A trained ensemble's own checkpoint holds every member's weights, so rebuilding it
        (demo, evaluation on another machine) must not need the original member files.
        """
        return {**config, "checkpoints": None, "num_members": self.num_members}


def _member_configs(
    member: Any, members: Any, checkpoints: list[str] | None, num_members: int
) -> list[dict]:
    """One config per member: `members` as given, or `member` repeated (once per checkpoint)."""
    member, members = (
        OmegaConf.to_container(c, resolve=True) if isinstance(c, DictConfig | ListConfig) else c
        for c in (member, members)
    )
    if members:
        if member:
            raise SettingError(
                "give the ensemble either member (K copies) or members (a list), not both"
            )
        if checkpoints and len(checkpoints) != len(members):
            raise SettingError(
                f"{len(checkpoints)} checkpoints for {len(members)} members: give one per member, in order"
            )
        return list(members)
    if not member:
        raise SettingError("an ensemble needs member (one config, K copies) or members (a list)")
    return [member] * (len(checkpoints) if checkpoints else num_members)
