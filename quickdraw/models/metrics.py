"""MAP@k, the Quick, Draw! competition metric, as a streaming torchmetrics Metric.

torchmetrics has no multiclass MAP@k. ``RetrievalMRR(top_k=3)`` gives the same number when each
sample is flattened into C (query, document) rows, but it keeps every score in list states: with
340 classes and a 100k-image validation set that is 34M floats per rank, gathered at each epoch
end. With one true class per sample, average precision at k is just 1/rank of that class (0
beyond k), so a running sum and count are enough and reduce across DDP ranks by summation.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy


def average_precision_at_k(preds: Tensor, target: Tensor, k: int = 3) -> Tensor:
    """Per-sample AP@k (B,): 1/rank of the true class among the top k scores, 0 when absent.

    Ties between scores are broken by ``torch.topk``'s order; real logits practically never tie.
    """
    if preds.ndim != 2 or target.ndim != 1 or preds.shape[0] != target.shape[0]:
        raise ValueError(
            f"need preds (B, C) and target (B,), got {tuple(preds.shape)} and {tuple(target.shape)}"
        )
    k = min(k, preds.shape[1])
    top = preds.topk(k, dim=1).indices
    hits = top == target[:, None]
    weights = 1.0 / torch.arange(1, k + 1, device=preds.device, dtype=torch.float32)
    # At most one hit per row, so the weighted sum picks out 1/rank.
    return (hits.float() * weights).sum(dim=1)


class MeanAveragePrecisionAtK(Metric):
    """Mean over samples of AP@k (Kaggle's MAP@3 for k=3); preds may be logits, log-probs or probs."""

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, k: int = 3, **kwargs) -> None:
        super().__init__(**kwargs)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.k = k
        self.add_state("sum", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        ap = average_precision_at_k(preds.detach(), target, self.k)
        self.sum += ap.sum()
        self.count += ap.numel()

    def compute(self) -> Tensor:
        # An empty epoch reads 0 rather than NaN so "best" trackers and loggers stay finite.
        return self.sum / self.count.clamp(min=1)


def split_metrics(num_classes: int, split: str) -> MetricCollection:
    """The per-split metrics ``{split}/acc`` (top-1), ``{split}/acc3`` (top-3) and ``{split}/map3``."""
    k = min(3, num_classes)
    return MetricCollection(
        {
            # micro: the fraction of images right, the number Kaggle-style leaderboards quote
            "acc": MulticlassAccuracy(num_classes, top_k=1, average="micro"),
            "acc3": MulticlassAccuracy(num_classes, top_k=k, average="micro"),
            "map3": MeanAveragePrecisionAtK(k),
        },
        prefix=f"{split}/",
        # acc and acc3 share state shapes; grouping them would make acc3 report top-1.
        compute_groups=False,
    )


def worst_fraction_mean(class_acc: Tensor, fraction: float = 0.1) -> Tensor:
    """Mean accuracy of the worst ``fraction`` of classes (at least one): what averages hide."""
    n = max(1, math.ceil(fraction * class_acc.numel()))
    return class_acc.float().sort().values[:n].mean()
