"""Test-set class balancing: rescale class scores so that predicted class counts match a prior.

Kaggle's Quick, Draw! test set held the same number of drawings of every class, and the 2018
winners gained about +0.7 % MAP@3 per model by forcing their top-1 counts to match. The method
here is iterative prior correction on the probability matrix P (N, C): find one weight w_c per
class so that the rows of P * w, renormalised, give every class its target share, in two stages:

1. Sinkhorn scaling (the soft stage): w_c <- w_c * target_c / sum_i q_ic, where q is P * w with
   rows renormalised; this matches the *expected* counts and converges in a few dozen passes.
2. Hard-count correction: the same kind of update on the counts of each row's top class, with a
   shrinking step, keeping the best weights seen, so that top-1 counts match too: exactly on small
   matrices; on Kaggle's 112 k x 340, within a few drawings of the 330 per class after the default
   100 passes (``scripts/bench_balance.py`` prints the figure).

Each pass is one (N, C) multiply-and-reduce in float32: 112 k x 340 takes seconds on one core
(``python scripts/bench_balance.py``).

It needs the whole matrix, so ``predict balance=true`` holds N x C float32 (150 MB for Kaggle's
112 199 x 340 test set) before writing anything. **Only for test sets known to be balanced** (or
whose class counts are known: ``prior=FILE``): on a user's own data, whose classes are as unbalanced
as the world, it pushes correct answers of common classes onto rare ones and lowers the score.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from quickdraw.inference import LabelMatcher


def balance(
    probs: np.ndarray,
    prior: np.ndarray | None = None,
    soft_iters: int = 100,
    hard_iters: int = 100,
    candidates: int = 16,
) -> np.ndarray:
    """(N, C) scores whose row-wise top classes have counts ``N * prior`` (uniform when None).

    The scores are ``probs * w`` renormalised per row, so each row's ranking changes only through
    the class weights; use them for top-k lists, not as calibrated probabilities. The hard stage
    looks at each row's ``candidates`` best classes after the soft stage (the top class of a row
    is among them unless a weight moves more than the soft stage left it).
    """
    probs = np.asarray(probs, np.float32)
    n, c = probs.shape
    prior = np.full(c, 1 / c) if prior is None else np.asarray(prior, np.float64)
    if prior.shape != (c,) or (prior < 0).any() or prior.sum() <= 0:
        raise ValueError(f"prior must be {c} non-negative class shares, got shape {prior.shape}")
    target = n * prior / prior.sum()
    if n == 0:
        return probs
    w = sinkhorn_weights(probs, target, soft_iters)
    w = _match_top1(probs, w, target, hard_iters, min(candidates, c))
    out = probs * w
    out /= out.sum(axis=1, keepdims=True) + 1e-30
    return out


def sinkhorn_weights(probs: np.ndarray, target: np.ndarray, iters: int) -> np.ndarray:
    """Class weights w with sum_i p_ic w_c / (p_i . w) = target_c: expected counts matched.

    Two matrix-vector products a pass (expected count of c = w_c * sum_i p_ic / (p_i . w)).
    """
    w = np.ones(probs.shape[1], np.float32)
    target = target.astype(np.float32)
    for _ in range(iters):
        expected = w * (probs.T @ (1 / np.maximum(probs @ w, 1e-30)))
        if np.abs(expected - target).max() < 0.5:  # within half a drawing of every target
            break
        w *= target / np.maximum(expected, 1e-12)
        w /= w.max()
    return w


def _match_top1(
    probs: np.ndarray, w: np.ndarray, target: np.ndarray, iters: int, k: int
) -> np.ndarray:
    """Weights nudged until top-1 counts match ``target`` (the best weights seen are returned).

    Works on each row's ``k`` best candidates under the starting weights: (N, k) arrays a pass.
    """
    n, c = probs.shape
    cand = np.argpartition(-(probs * w), k - 1, axis=1)[:, :k] if k < c else None
    if cand is None:
        cand = np.broadcast_to(np.arange(c), (n, c))
    scores = np.log(np.take_along_axis(probs, cand, 1) + 1e-30).astype(np.float32)
    start = np.log(w + 1e-30).astype(np.float32)
    # A class in no row's candidates gets no rows from this stage whatever its weight: raising it
    # without end would only make it win everywhere once all classes compete again. And weights
    # stay within a factor e^3 of the soft stage's, where the candidate lists remain valid.
    reachable = np.bincount(cand.ravel(), minlength=c) > 0
    log_w, rows, best, best_dev = start.copy(), np.arange(n), start.copy(), np.inf
    log_target = np.log(target + 1).astype(np.float32)
    for it in range(iters):
        counts = np.bincount(cand[rows, np.argmax(scores + log_w[cand], axis=1)], minlength=c)
        dev = np.abs(counts - target)[reachable].max()
        if dev < best_dev:
            best, best_dev = log_w.copy(), dev
        if best_dev < 1:
            break
        # Over-predicted classes lose weight, under-predicted gain (+1 keeps empty classes
        # finite); a step shrinking over the passes settles classes that swap rows back and forth.
        step = np.float32(0.5 / (1 + it / 50))
        log_w -= step * reachable * (np.log(counts + 1).astype(np.float32) - log_target)
        np.clip(log_w, start - 3, start + 3, out=log_w)
    # The candidate lists are an approximation: keep the soft weights unless the full matrix agrees.
    if _top1_deviation(probs, best, target) > _top1_deviation(probs, start, target):
        best = start
    return np.exp(best - best.max())


def _top1_deviation(probs: np.ndarray, log_w: np.ndarray, target: np.ndarray) -> float:
    top = np.argmax(probs * np.exp(log_w - log_w.max()), axis=1)
    return float(np.abs(np.bincount(top, minlength=len(target)) - target).max())


def load_prior(path: str | Path, classes: list[str]) -> np.ndarray:
    """Class shares from a ``word,count`` CSV (any accepted spelling of the class names).

    Classes the file does not list get a count of 0; a word naming no class is an error.
    """
    matcher = LabelMatcher(classes)
    counts = np.zeros(len(classes), np.float64)
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        fields = {h.strip() for h in reader.fieldnames or []}
        if not {"word", "count"} <= fields:
            raise ValueError(f"{path}: expected columns word,count, found {reader.fieldnames}")
        for row in reader:
            row = {k.strip(): v for k, v in row.items()}
            i = matcher(row["word"])
            if i is None:
                raise ValueError(f"{path} line {reader.line_num}: {row['word']!r} names no class")
            counts[i] += float(row["count"])
    if counts.sum() <= 0:
        raise ValueError(f"{path}: the counts add up to 0")
    return counts / counts.sum()
