"""Training losses with one interface, so the LightningModule treats plain and penalised training alike.

Every loss is `loss(logits, target, sample_weight=None)` plus `update(class_accuracy)`, which
the module calls after each validation. `sample_weight` carries bootstrap multiplicities for
ensemble members: weighting sample i by how often it was drawn gives the loss of the resampled
batch without building it.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from quickdraw.metrics.hardness import class_hardness, class_weights


class CrossEntropy(nn.Module):
    """Plain cross-entropy; the class weights stay uniform and `update` does nothing.

    The (uniform) weight buffer exists so every loss has the same checkpoint layout and forward.
    """

    def __init__(self, num_classes: int, label_smoothing: float = 0.0) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.label_smoothing = label_smoothing
        # A buffer, not an attribute: saved in checkpoints, restored on resume, moved with .to().
        self.register_buffer("weight", torch.ones(num_classes))

    def forward(
        self, logits: Tensor, target: Tensor, sample_weight: Tensor | None = None
    ) -> Tensor:
        per_sample = F.cross_entropy(
            logits,
            target,
            weight=self.weight,
            reduction="none",
            label_smoothing=self.label_smoothing,
        )
        # Same normaliser as F.cross_entropy(weight=..., reduction="mean"): the sum of the targets' weights.
        norm = self.weight[target]
        if sample_weight is not None:
            per_sample, norm = per_sample * sample_weight, norm * sample_weight
        return per_sample.sum() / norm.sum().clamp(min=torch.finfo(norm.dtype).tiny)

    def update(self, class_accuracy: Tensor) -> None:
        """Plain cross-entropy does not adapt."""


class ClassWeightedCrossEntropy(CrossEntropy):
    """Cross-entropy that up-weights the classes the model currently gets wrong.

    After each validation the class weights become [`quickdraw.metrics.hardness.class_weights`][quickdraw.metrics.hardness.class_weights]:
    `(1 - acc_c) + floor` scaled to mean 1, so the loss keeps the scale of plain cross-entropy and
    the learning rate means the same thing. Weights are uniform until the first update, so the
    first epoch is plain cross-entropy.
    """

    def __init__(self, num_classes: int, floor: float = 0.25, label_smoothing: float = 0.0) -> None:
        super().__init__(num_classes, label_smoothing)
        class_hardness(np.zeros(1), floor)  # validates floor now rather than after an epoch
        self.floor = floor

    @torch.no_grad()
    def update(self, class_accuracy: Tensor | np.ndarray) -> None:
        acc = np.asarray(torch.as_tensor(class_accuracy).detach().cpu(), np.float64)
        if acc.shape != tuple(self.weight.shape):
            raise ValueError(
                f"class_accuracy must have shape {tuple(self.weight.shape)}, got {acc.shape}"
            )
        self.weight.copy_(torch.as_tensor(class_weights(acc, self.floor), dtype=self.weight.dtype))


def soft_target_kl(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """`T^2 * KL(p_teacher,T || p_student,T)`, averaged over the batch: the soft-target term of
    knowledge distillation (Hinton, Vinyals & Dean 2015), with `p_T = softmax(logits / T)`.

    student_logits, teacher_logits: (B, C); the teacher's may be log-probabilities (an averaging
    ensemble's output), which tempering treats as logits. Returns a scalar.
    """
    t = float(temperature)
    log_student = F.log_softmax(student_logits / t, dim=-1)
    log_teacher = F.log_softmax(teacher_logits.detach() / t, dim=-1)
    return F.kl_div(log_student, log_teacher, reduction="batchmean", log_target=True) * t * t
