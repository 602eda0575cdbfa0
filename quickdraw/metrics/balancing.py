"""Test-set class balancing: re-rank class scores so that top-1 class counts equal target counts.

Kaggle's Quick, Draw! test set held the same number of drawings of every class, and the 2018
winners gained about +0.7 % MAP@3 per model by forcing their top-1 counts to match, rescaling
each class's probabilities by one factor per class. Choosing those factors is a transportation
problem: give each of the N rows one class, class c exactly `target_c` rows (`N * prior`
rounded by largest remainder, so the targets add up to N), maximising the summed log-probability
of the chosen classes. Its dual variables are one price per class, and the per-class factors are
`exp(-price)`: a row's top class under `log p - price` is the class it is given.

The solver ([`assign`][quickdraw.metrics.balancing.assign]) is exact, whatever the matrix (flat or peaked, ties, zero shares):

1. Sinkhorn scaling (Cuturi 2013) gives starting prices that match the *expected* counts; the
   rows' top classes under them are already near the targets.
2. Successive shortest paths with potentials (the Hungarian method for transportation problems:
   Tomizawa 1971, Edmonds & Karp 1972) moves the rest, one row-chain at a time: from a class with
   too many rows to the nearest class with too few, over a graph of the C classes whose edge
   c -> d costs the smallest loss of moving one of c's rows to d. Each search moves at least one
   row off a class with too many, so it stops after at most N searches with **every count equal
   to its target**, and the prices keep each row's class its best under `log p - price`: the
   assignment maximises the summed log-probability among all with these counts (up to float64
   rounding, and 1e-9 nats a row where rows tie).

Memory: the (N, C) float32 log-probabilities (150 MB for Kaggle's 112 199 x 340 test set) plus C x C
edge tables; no N x N matrix. Time: `python -m benchmarks.balance` prints it at 1 720 x 344
and 112 199 x 340, and the count spread (always the targets).

It needs the whole matrix, so `predict balance=true` holds N x C float32 before writing anything.
**Only for test sets known to be balanced** (or whose class counts are known: `prior=FILE`): on a
user's own data, whose classes are as unbalanced as the world, it pushes correct answers of common
classes onto rare ones and lowers the score.
"""

from __future__ import annotations

import csv
from itertools import pairwise
from pathlib import Path

import numpy as np

from quickdraw.core.errors import InputError
from quickdraw.data.labels import LabelMatcher
from quickdraw.data.readers import open_text_file
from quickdraw.data.text import excerpt


def balance(probs: np.ndarray, prior: np.ndarray | None = None) -> np.ndarray:
    """(N, C) float32 scores whose row-wise top classes have exactly [`target_counts`][quickdraw.metrics.balancing.target_counts] counts.

    `probs`: (N, C) non-negative class probabilities (rows need not sum to 1); `prior`: C
    non-negative class shares (uniform when None; classes of share 0 get no row and score 0).
    Each row's scores are the softmax of `log p - price` over the classes, with the row's
    assigned class ([`assign`][quickdraw.metrics.balancing.assign]) lifted just above the others where it only ties: the top-1 is
    the assigned class, and the other classes keep the order of the rescaled probabilities, for
    top-k lists (MAP@3). Use them for ranking, not as calibrated probabilities.
    """
    probs = _checked(probs)
    n, c = probs.shape
    if prior is not None and np.shape(prior) != (c,):
        raise InputError(
            f"prior must be one finite, non-negative share per class ({c} classes), "
            f"got shape {np.shape(prior)}"
        )
    target = target_counts(n, np.full(c, 1.0) if prior is None else prior)
    if n == 0:
        return probs.copy()
    logp = _log(probs)
    rows, price = assign(logp, target, probs)
    return _scores(logp, price, rows, target)


def target_counts(n: int, prior: np.ndarray) -> np.ndarray:
    """(C,) int64 counts adding up to `n`: `n * prior / sum(prior)` rounded by largest remainder.

    Each count is its exact share rounded down or up; remainders that tie go to the lower class
    index. Raises ValueError for shares that are negative, not finite or add up to 0.
    """
    prior = np.asarray(prior, np.float64)
    if prior.ndim != 1 or not np.isfinite(prior).all() or (prior < 0).any() or prior.sum() <= 0:
        raise InputError(
            f"prior must be one finite, non-negative share per class adding up to more than 0; "
            f"got shape {prior.shape}, sum {prior.sum() if prior.size else 0}"
        )
    exact = n * prior / prior.sum()
    counts = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: n - int(counts.sum())]] += 1
    return counts


def assign(
    logp: np.ndarray, target: np.ndarray, probs: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's class (N,) int64, class c given to exactly `target[c]` rows, and the (C,)
    float64 prices under which every row's class is its best: `argmax(logp[i] - price)`.

    `logp`: (N, C) float32 finite log-probabilities; `target`: (C,) ints adding up to N.
    The assignment maximises `sum_i logp[i, class_i]` among all with these counts. `probs`:
    `exp(logp)` where the caller holds it already (saves an (N, C) copy).
    """
    n, c = logp.shape
    if int(np.sum(target)) != n:
        raise ValueError(f"the target counts add up to {int(np.sum(target))}, not to the {n} rows")
    with np.errstate(over="ignore", invalid="ignore"):
        price = _sinkhorn_prices(np.exp(logp) if probs is None else probs, target)
    if not np.isfinite(price).all():  # overflow on extreme inputs: the exact stage starts from 0
        price = np.zeros(c)
    chosen = _argmax_rows(logp, price)
    if (np.bincount(chosen, minlength=c) == target).all():
        return chosen, price
    return _ClassGraph(logp, price, chosen).move_until(np.asarray(target, np.int64))


def _checked(probs: np.ndarray) -> np.ndarray:
    probs = np.asarray(probs, np.float32)
    if probs.ndim != 2:
        raise ValueError(f"balance needs an (N, C) probability matrix, got shape {probs.shape}")
    if probs.size and not (np.isfinite(probs).all() and (probs >= 0).all()):
        raise ValueError("balance needs finite, non-negative probabilities (got NaN, inf or < 0)")
    return probs


def _log(probs: np.ndarray) -> np.ndarray:
    """log p in float32, probabilities of 0 at the smallest normal float32 (about -87.3)."""
    return np.log(np.maximum(probs, np.finfo(np.float32).tiny))


def _argmax_rows(logp: np.ndarray, price: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """argmax over classes of `logp - price`, in row chunks (no (N, C) float64 copy)."""
    out = np.empty(len(logp), np.int64)
    for k in range(0, len(logp), chunk):
        out[k : k + chunk] = np.argmax(logp[k : k + chunk] - price, axis=1)
    return out


def _sinkhorn_prices(probs: np.ndarray, target: np.ndarray, iters: int = 100) -> np.ndarray:
    """Starting prices: Sinkhorn's class weights w on p (expected counts matched), as -log w.

    Only a start: two matrix-vector products a pass, in float32; where it stalls (very peaked
    matrices) the exact stage has more rows to move, and takes longer, but ends the same.
    """
    w = np.ones(probs.shape[1], np.float32)
    goal = np.asarray(target, np.float32)
    for _ in range(iters):
        expected = w * (probs.T @ (1 / np.maximum(probs @ w, 1e-30)))
        if np.abs(expected - goal).max() < 0.5:  # within half a row of every target
            break
        w *= goal / np.maximum(expected, 1e-12)
        w /= w.max()
    return -np.log(np.maximum(w, 1e-30)).astype(np.float64)


class _ClassGraph:
    """Rows grouped by class, and the cheapest move between each pair of classes.

    `loss[c, d]`: the smallest `(logp[i, c] - price[c]) - (logp[i, d] - price[d])` over the
    rows i of class c (>= 0 while every row sits in its best class), `row[c, d]` that row.
    """

    def __init__(self, logp: np.ndarray, price: np.ndarray, chosen: np.ndarray) -> None:
        self.logp, self.price, self.chosen = logp, price.copy(), chosen
        c = logp.shape[1]
        order = np.argsort(chosen, kind="stable")
        split = np.split(order, np.cumsum(np.bincount(chosen, minlength=c))[:-1])
        self.members = [set(m.tolist()) for m in split]
        self.loss = np.full((c, c), np.inf)
        self.row = np.zeros((c, c), np.int64)
        for k in range(c):
            self._refresh(k, np.arange(c))

    def move_until(self, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Move rows along shortest class paths until every class holds `target` rows."""
        excess = np.bincount(self.chosen, minlength=len(target)) - target
        while (excess > 0).any():
            path, dist = self._nearest_short_class(excess)
            # Potentials: lowering each class's price by its distance (capped at the path's) keeps
            # every row in its best class, and makes the path's moves cost nothing in reduced terms.
            shift = np.minimum(dist, dist[path[-1]])
            self.price -= shift
            self.loss += shift[:, None] - shift[None, :]
            moved = self._move(path, min(excess[path[0]], -excess[path[-1]]))
            excess[path[0]] -= moved
            excess[path[-1]] += moved
        return self.chosen, self.price

    def _nearest_short_class(self, excess: np.ndarray) -> tuple[list[int], np.ndarray]:
        """Dijkstra from every class with too many rows to the nearest with too few (dense, C^2)."""
        loss = np.maximum(self.loss, 0)  # float rounding can leave -1e-12
        sources = np.flatnonzero(excess > 0)
        first = np.argmin(loss[sources], axis=0)
        dist, pred = loss[sources[first], np.arange(len(loss))], sources[first]
        dist[sources], pred[sources] = 0.0, -1
        done = np.zeros(len(loss), bool)
        done[sources] = True
        while True:
            u = int(np.argmin(np.where(done, np.inf, dist)))
            if excess[u] < 0:
                break
            done[u] = True
            through = dist[u] + loss[u]
            better = (through < dist) & ~done
            dist[better], pred[better] = through[better], u
        path = [u]
        while pred[path[-1]] >= 0:
            path.append(int(pred[path[-1]]))
        return path[::-1], dist

    def _move(self, path: list[int], most: int) -> int:
        """Move up to `most` rows along each edge of `path`; returns how many moved (>= 1).

        Every row tied with the edge's cheapest (within 1e-9 nats) may move: rows that tie, as
        identical rows do, go many at a time instead of one shortest-path search each.
        """
        moves = [(c, d, self._tight_rows(c, d)) for c, d in pairwise(path)]
        count = min(most, *(len(rows) for _, _, rows in moves))
        for c, d, rows in moves:
            rows = rows[:count]
            self.chosen[rows] = d
            self.members[c].difference_update(rows.tolist())
            self.members[d].update(rows.tolist())
            self._refresh(c, np.flatnonzero(np.isin(self.row[c], rows)))  # their cheapest moves
            reduced = self.logp[rows].astype(np.float64) - self.price
            through = reduced[:, d : d + 1] - reduced
            best = np.argmin(through, axis=0)
            value = through[best, np.arange(len(self.price))]
            better = value < self.loss[d]
            self.loss[d, better], self.row[d, better] = value[better], rows[best[better]]
            self.loss[d, d] = np.inf
        return count

    def _tight_rows(self, c: int, d: int) -> np.ndarray:
        """Class c's rows whose move to d costs the least (ties within 1e-9 nats)."""
        rows = np.fromiter(self.members[c], np.int64, len(self.members[c]))
        through = (self.logp[rows, c].astype(np.float64) - self.price[c]) - (
            self.logp[rows, d].astype(np.float64) - self.price[d]
        )
        return rows[through <= through.min() + 1e-9]

    def _refresh(self, c: int, cols: np.ndarray, chunk: int = 8192) -> None:
        """Recompute `loss[c, cols]` over class c's rows, in row chunks."""
        self.loss[c, cols] = np.inf
        rows = np.fromiter(self.members[c], np.int64, len(self.members[c]))
        for k in range(0, len(rows), chunk):
            part = rows[k : k + chunk]
            reduced = self.logp[part].astype(np.float64) - self.price
            through = reduced[:, c : c + 1] - reduced[:, cols]
            best = np.argmin(through, axis=0)
            value = through[best, np.arange(len(cols))]
            better = value < self.loss[c, cols]
            self.loss[c, cols[better]] = value[better]
            self.row[c, cols[better]] = part[best[better]]
        self.loss[c, c] = np.inf


def _scores(
    logp: np.ndarray, price: np.ndarray, rows: np.ndarray, target: np.ndarray
) -> np.ndarray:
    """Row softmax of `logp - price`, the assigned class lifted to the top where it only ties
    (computed in `logp`'s buffer)."""
    n = len(logp)
    out = logp
    out -= price.astype(np.float32)
    out[:, target == 0] = -np.inf  # classes of share 0 score 0
    mine = out[np.arange(n), rows].copy()
    out[np.arange(n), rows] = -np.inf
    others = out.max(axis=1)
    # 1e-3 nats: a ratio of 1.001, far above float32 resolution, far below any real preference.
    out[np.arange(n), rows] = np.maximum(mine, others + np.float32(1e-3))
    out -= out.max(axis=1, keepdims=True)
    np.exp(out, out=out)
    out /= out.sum(axis=1, keepdims=True)
    return out


def load_prior(path: str | Path, classes: list[str]) -> np.ndarray:
    """Class shares from a `word,count` CSV (any accepted spelling of the class names).

    Classes the file does not list get a count of 0. A word naming no class, a class listed twice
    (which count is meant?) and a count that is not a finite number >= 0 are errors naming the line.
    """
    matcher = LabelMatcher(classes)
    counts = np.zeros(len(classes), np.float64)
    seen: dict[int, int] = {}  # class -> the line that gave its count
    with open_text_file(path, setting="prior") as f:
        reader = csv.DictReader(f)
        fields = {h.strip() for h in reader.fieldnames or []}
        if not {"word", "count"} <= fields:
            raise InputError(
                f"{path}: expected columns word,count, found {excerpt(reader.fieldnames)}"
            )
        for row in reader:
            row = {k.strip(): v for k, v in row.items() if k is not None}
            where = f"{path} line {reader.line_num}"
            i = matcher(row["word"] or "")
            if i is None:
                raise InputError(f"{where}: {excerpt(row['word'], 40)} names no class")
            if i in seen:
                raise InputError(
                    f"{where}: {classes[i]!r} is listed again (first on line {seen[i]}); "
                    "give each class one count"
                )
            seen[i] = reader.line_num
            counts[i] = _count(row["count"], where)
    if counts.sum() <= 0:
        raise InputError(f"{path}: the counts add up to 0")
    return counts / counts.sum()


def _count(text: str | None, where: str) -> float:
    """A prior's count: a finite number >= 0, else a ValueError naming `where` and the value."""
    try:
        value = float((text or "").strip())
    except ValueError:
        value = float("nan")
    if not (np.isfinite(value) and value >= 0):
        raise InputError(f"{where}: the count {excerpt(text, 40)} is not a number >= 0")
    return value
