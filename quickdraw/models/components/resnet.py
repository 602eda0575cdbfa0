"""ResNet18 for small doodle images: grey or multi-channel input, a 64 px-friendly stem, optional freezing.

The network is torchvision's `resnet18` with its children adopted by a thin wrapper, so
state-dict keys are torchvision's own (`conv1.weight`, `layer1.0...`, `fc.weight`) while
the wrapper adds `forward_features` and keeps frozen BatchNorms in eval mode.
"""

from __future__ import annotations

import os
import warnings
from urllib.parse import urlparse

import torch
import torchvision
from torch import Tensor, nn
from torchvision.models import ResNet18_Weights

from quickdraw.core.errors import SettingError

# freeze=k freezes the first k entries: the stem, then the residual stages in order.
FREEZE_GROUPS: tuple[tuple[str, ...], ...] = (
    ("conv1", "bn1"),
    ("layer1",),
    ("layer2",),
    ("layer3",),
    ("layer4",),
)
NUM_FEATURES = 512


class ResNet18(nn.Module):
    """torchvision's ResNet18 layout with 512-d `forward_features` and frozen parts kept in eval mode."""

    def __init__(
        self, backbone: torchvision.models.ResNet, num_classes: int, freeze: int = 0
    ) -> None:
        super().__init__()
        for name, child in backbone.named_children():
            self.add_module(name, child)
        self.num_features = NUM_FEATURES
        self.fc = nn.Linear(NUM_FEATURES, num_classes)
        self.frozen: list[str] = [name for group in FREEZE_GROUPS[:freeze] for name in group]
        for name in self.frozen:
            getattr(self, name).requires_grad_(False)

    def train(self, mode: bool = True) -> ResNet18:
        super().train(mode)
        # Frozen BatchNorms must not keep updating running stats from our batches.
        for name in self.frozen:
            getattr(self, name).eval()
        return self

    def forward_features(self, x: Tensor) -> Tensor:
        """(B, 512) pooled features, the input of `fc`."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.forward_features(x))


def resnet18(
    num_classes: int,
    in_channels: int = 1,
    stem: str = "imagenet",
    pretrained: bool = False,
    freeze: int = 0,
) -> ResNet18:
    """Build a ResNet18 classifier.

    stem: `"imagenet"` keeps the 7x7/2 conv + 3x3/2 max-pool (a 64 px input reaches layer4 at
      2x2; fast and accurate enough). `"small"` uses a 3x3/1 conv and no max-pool (layer4 at
      8x8 for 64 px: better for 32-64 px inputs at ~16x the compute). The small stem has no
      pretrained weights and is freshly initialised.
    in_channels: conv1 is rebuilt when != 3; with pretrained weights it starts from the RGB
      filters (summed for 1 channel, tiled and rescaled otherwise, as timm does).
    pretrained: ImageNet weights (`ResNet18_Weights.IMAGENET1K_V1`) from the torch hub cache;
      downloads when missing and raises a RuntimeError explaining the cache when offline.
    freeze: k in 0..5 freezes the first k of (stem = conv1 + bn1, layer1, layer2, layer3,
      layer4): 0 nothing, 1 the stem, 2 stem + layer1, 3 up to layer2, 4 up to layer3,
      5 everything but `fc` (a linear probe). Frozen parts get requires_grad=False and their
      BatchNorms stay in eval mode. `fc` is always a new Linear(512, num_classes).
    """
    if stem not in ("imagenet", "small"):
        raise SettingError(f"stem must be 'imagenet' or 'small', got {stem!r}")
    if not 0 <= freeze <= len(FREEZE_GROUPS):
        raise SettingError(f"freeze must be in 0..{len(FREEZE_GROUPS)}, got {freeze}")
    if in_channels < 1 or num_classes < 1:
        raise SettingError(
            f"need in_channels >= 1 and num_classes >= 1, got {in_channels}, {num_classes}"
        )
    backbone = _load_backbone(pretrained)
    if stem == "small":
        backbone.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        backbone.maxpool = nn.Identity()
    elif in_channels != 3:
        conv = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        if pretrained:
            with torch.no_grad():
                conv.weight.copy_(adapt_input_conv(backbone.conv1.weight, in_channels))
        backbone.conv1 = conv
    if freeze and (not pretrained or stem == "small"):
        warnings.warn(
            f"freeze={freeze} freezes randomly initialised layers (pretrained={pretrained}, stem={stem!r})",
            stacklevel=2,
        )
    return ResNet18(backbone, num_classes, freeze)


def adapt_input_conv(weight: Tensor, in_channels: int) -> Tensor:
    """RGB conv filters (O, 3, kh, kw) -> (O, in_channels, kh, kw) with the same response scale.

    A grey image fed to summed filters gives the response the RGB filters give to that image
    replicated on R, G and B, which is what a pretrained net saw for grey-ish inputs.
    """
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    repeats = -(-in_channels // 3)
    return weight.repeat(1, repeats, 1, 1)[:, :in_channels] * (3 / in_channels)


def _load_backbone(pretrained: bool) -> torchvision.models.ResNet:
    if not pretrained:
        return torchvision.models.resnet18(weights=None)
    weights = ResNet18_Weights.IMAGENET1K_V1
    try:
        return torchvision.models.resnet18(weights=weights, progress=False)
    except OSError as err:  # URLError and socket errors are OSErrors
        cached = os.path.join(
            torch.hub.get_dir(), "checkpoints", os.path.basename(urlparse(weights.url).path)
        )
        raise RuntimeError(
            f"ImageNet weights for resnet18 are not in the torch hub cache and could not be downloaded "
            f"({err}).\nExpected file: {cached}\nOn a machine with internet, download {weights.url} "
            f"and copy it to exactly that path (or set TORCH_HOME to a folder holding "
            f"checkpoints/{os.path.basename(cached)}).\npretrained=false, the default and the usual "
            f"choice for Quick, Draw! (doodles are far from ImageNet photos), needs no file."
        ) from err
