"""Networks (``components``), training losses and objectives, and the LightningModule that trains them."""

from quickdraw.models.losses import ClassWeightedCrossEntropy, CrossEntropy
from quickdraw.models.module import QuickDrawModule

__all__ = ["ClassWeightedCrossEntropy", "CrossEntropy", "QuickDrawModule"]
