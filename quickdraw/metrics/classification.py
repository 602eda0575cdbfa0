"""Scoring classifiers: MAP@3, top-k, per-class accuracy, the class tail and confusions, in one place.

The LightningModule's val/test metrics, `quickdraw.evaluate`, `quickdraw.evaluation.report` and
`python -m benchmarks.compare_models` all score with these definitions, so their numbers agree.

MAP@k is the Quick, Draw! Kaggle competition's metric. torchmetrics has no multiclass MAP@k:
`RetrievalMRR(top_k=3)` gives the same number when each sample is flattened into C (query,
document) rows, but it keeps every score in list states (340 classes x 100k images = 34M floats
per rank, gathered at each epoch end). With one true class per sample, average precision at k is
1/rank of that class (0 beyond k), so a running sum and count suffice and reduce across DDP ranks
by summation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy


# -- streaming metrics (torchmetrics) ------------------------------------------------------------
def average_precision_at_k(preds: Tensor, target: Tensor, k: int = 3) -> Tensor:
    """Per-sample AP@k (B,): 1/rank of the true class among the top k of `preds` (B, C), 0 when absent.

    Ties between scores are broken by `torch.topk`'s order; real logits practically never tie.
    Raises `ValueError` for shapes other than (B, C) and (B,).
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
    """The per-split metrics `{split}/acc` (top-1), `{split}/acc3` (top-3) and `{split}/map3`."""
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


# -- per-class figures from confusion counts ---------------------------------------------------------
def class_accuracy(confusion: np.ndarray | Tensor) -> np.ndarray:
    """(C,) float64 accuracy per true class from (C, C) counts (rows true, columns predicted).

    A class with no drawings scored is NaN: neither easy nor hard (see [`quickdraw.metrics.hardness`][quickdraw.metrics.hardness]).
    """
    c = confusion.detach().cpu().numpy() if isinstance(confusion, Tensor) else confusion
    c = np.asarray(c, np.float64)
    n = c.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.diag(c) / np.maximum(n, 1), np.nan)


def worst_fraction_mean(class_acc: np.ndarray, fraction: float) -> float:
    """Mean accuracy of the worst `fraction` of classes (at least one; NaN classes left out)."""
    acc = np.sort(np.asarray(class_acc, np.float64)[~np.isnan(class_acc)])
    if not len(acc):
        return float("nan")
    return float(acc[: max(1, math.ceil(fraction * len(acc)))].mean())


def class_tail(class_acc: np.ndarray) -> dict[str, float]:
    """How the hardest classes fare: what averages hide.

    `worst_decile_acc` / `worst_half_acc`: mean accuracy of the worst 10 % / 50 % of classes;
    `classes_at_zero`: classes never right; `classes`: classes with drawings scored. With a
    handful of drawings per class accuracies are coarse, so the worst decile is often all zeros;
    the worst half and the count of zeros still separate runs.
    """
    acc = np.asarray(class_acc, np.float64)
    acc = acc[~np.isnan(acc)]
    return {
        "worst_decile_acc": worst_fraction_mean(acc, 0.1),
        "worst_half_acc": worst_fraction_mean(acc, 0.5),
        "classes_at_zero": int((acc == 0).sum()),
        "classes": len(acc),
    }


# -- scoring a model over batches ---------------------------------------------------------------------
@dataclass
class Scores:
    """Predictions of a model on N labelled drawings, and every figure derived from them."""

    classes: list[str]
    labels: np.ndarray  # (N,) int64 true class ids
    topk: np.ndarray  # (N, k) int64 predicted class ids, best first
    metrics: dict[str, float]  # {prefix}/acc, /acc3, /map3, from split_metrics

    @property
    def confusion(self) -> np.ndarray:
        """(C, C) int64 counts, rows true class, columns top-1 prediction."""
        c = np.zeros((len(self.classes),) * 2, np.int64)
        np.add.at(c, (self.labels, self.topk[:, 0]), 1)
        return c

    def class_accuracy(self) -> pd.Series:
        """Per-class top-1 accuracy (NaN for classes without drawings), indexed by class name."""
        return pd.Series(
            class_accuracy(self.confusion),
            index=pd.Index(self.classes, name="class"),
            name="accuracy",
        )

    def tail(self) -> dict[str, float]:
        return class_tail(class_accuracy(self.confusion))

    def confused_pairs(self, n: int = 10) -> pd.DataFrame:
        """The n (true, predicted) pairs with most errors; `share` is of the true class's drawings."""
        c = self.confusion
        errors = c.copy()
        np.fill_diagonal(errors, 0)
        order = np.argsort(errors, axis=None, kind="stable")[::-1][:n]
        true, pred = np.unravel_index(order, c.shape)
        keep = errors[true, pred] > 0
        true, pred = true[keep], pred[keep]
        return pd.DataFrame(
            {
                "true": [self.classes[i] for i in true],
                "predicted": [self.classes[j] for j in pred],
                "count": errors[true, pred],
                "share": errors[true, pred] / c.sum(1)[true],
            }
        )

    def per_class_table(self) -> pd.DataFrame:
        """`class, count, accuracy, most_confused_with, confused_count`: evaluate's per_class.csv."""
        c = self.confusion
        errors = c.copy()
        np.fill_diagonal(errors, -1)
        other = errors.argmax(axis=1)
        worst = errors[np.arange(len(c)), other]
        return pd.DataFrame(
            {
                "class": self.classes,
                "count": c.sum(axis=1),
                "accuracy": class_accuracy(c).round(4),
                "most_confused_with": [
                    self.classes[o] if w > 0 else "" for o, w in zip(other, worst, strict=True)
                ],
                "confused_count": np.maximum(worst, 0),
            }
        )


@torch.inference_mode()
def score(
    predict_proba,
    batches: Iterable[tuple],
    classes: list[str],
    prefix: str = "test",
    k: int = 3,
) -> Scores:
    """Score `predict_proba(strokes) -> (B, C) probabilities` over `(strokes, labels)` batches.

    `labels` are (B,) int64 class ids. The metrics are [`split_metrics`][quickdraw.metrics.classification.split_metrics] (top-1, top-3,
    MAP@3), the ones the LightningModule logs, so evaluation and training agree.
    """
    metrics = split_metrics(len(classes), prefix)
    labels, topk = [], []
    k = min(k, len(classes))
    for strokes, target in batches:
        probs = torch.as_tensor(predict_proba(strokes))
        target_t = torch.as_tensor(target, dtype=torch.int64)
        metrics.update(probs, target_t)
        labels.append(np.asarray(target, np.int64))
        topk.append(probs.topk(k, dim=1).indices.numpy())
    values = {name: float(v) for name, v in metrics.compute().items()}
    return Scores(
        list(classes),
        np.concatenate(labels) if labels else np.zeros(0, np.int64),
        np.concatenate(topk) if topk else np.zeros((0, k), np.int64),
        values,
    )
