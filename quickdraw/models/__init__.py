"""Networks (``components``), the MAP@3 metric, losses and the LightningModule that trains them."""

from quickdraw.models.losses import ClassWeightedCrossEntropy, CrossEntropy
from quickdraw.models.metrics import MeanAveragePrecisionAtK
from quickdraw.models.module import QuickDrawModule

__all__ = [
    "ClassWeightedCrossEntropy",
    "CrossEntropy",
    "MeanAveragePrecisionAtK",
    "QuickDrawModule",
]
