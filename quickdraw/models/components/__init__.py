"""Plain ``nn.Module`` networks, each built from a Hydra ``_target_`` with ``num_classes`` and ``in_channels``."""

from quickdraw.models.components.ensemble import Ensemble
from quickdraw.models.components.resnet import ResNet18, resnet18

__all__ = ["Ensemble", "ResNet18", "resnet18"]
