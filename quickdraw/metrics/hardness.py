"""Class hardness, `(1 − acc_c) + floor`: the one rule behind adaptive quotas and penalised class weights.

The adaptive sampler gives class c `N · hardness_c` drawings in the next epoch (so
N·(1 − acc_c) + floor·N), and the penalised loss weights class c by `hardness_c` normalised to
mean 1. `floor` > 0 keeps solved classes in play (0.25 caps the hardest-to-easiest ratio at 5:1).

Policy for a class with no validation drawings (accuracy NaN): hardness 1, the neutral value —
the sampler gives it N, as fixed sampling would, and the loss weighs it like a class at
accuracy `floor`. Source: the study this project reproduces (adaptive resampling and a
class-weighted loss as two answers to the same per-class validation accuracy).
"""

from __future__ import annotations

import numpy as np

from quickdraw.core.errors import SettingError


def class_hardness(class_acc: np.ndarray, floor: float = 0.25) -> np.ndarray:
    """(C,) float64 hardness `(1 − acc_c) + floor` from (C,) accuracies in [0, 1]; NaN gives 1.

    Raises `ValueError` when `floor` is not positive (a zero weight would drop solved classes).
    """
    if floor <= 0:
        raise SettingError(
            f"floor must be > 0 (a zero weight would drop solved classes), got {floor}"
        )
    acc = np.clip(np.asarray(class_acc, np.float64), 0.0, 1.0)
    return np.where(np.isnan(acc), 1.0, (1.0 - acc) + floor)


def adaptive_quotas(class_acc: np.ndarray, n: int, floor: float = 0.25) -> np.ndarray:
    """(C,) int64 drawings per class for the next epoch: `rint(N · hardness_c)`."""
    return np.rint(n * class_hardness(class_acc, floor)).astype(np.int64)


def class_weights(class_acc: np.ndarray, floor: float = 0.25) -> np.ndarray:
    """(C,) float64 loss weights: hardness normalised to mean 1 (the loss keeps its scale)."""
    hardness = class_hardness(class_acc, floor)
    return hardness / hardness.mean()
