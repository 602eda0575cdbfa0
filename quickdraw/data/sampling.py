"""Which rows an epoch uses, and which rank, worker and batch serves each of them.

An epoch is `quota[c]` drawings of each class c, drawn without replacement and afresh every
epoch. The plan is a pure function of (seed, epoch, quotas), so every rank and worker computes
the same plan and takes a disjoint slice of it: nothing is served twice or skipped.

Order matters for I/O: rows are grouped by row group in a random order of row groups and then
shuffled within windows of `shuffle_window` rows, so a loader decodes each row group about once
while batches still mix classes.
"""

from __future__ import annotations

import numpy as np

from quickdraw.core.errors import SettingError
from quickdraw.data.store import SplitIndex


def epoch_rows(
    index: SplitIndex,
    quotas: np.ndarray,
    seed: int,
    epoch: int,
    shuffle_window: int,
    group_use: float = 0.25,
) -> np.ndarray:
    """Global row ids of one training epoch, in serving order.

    `group_use` trades randomness for I/O on large stores: class c's `q` drawings are drawn
    uniformly from just enough randomly chosen row groups to hold `q / group_use` rows, so each
    row group decoded serves at least that fraction of its rows. Every drawing keeps the same
    chance `q / n_c` of being picked; 1.0 reads whole row groups, small values approach plain
    uniform sampling (which a class smaller than `q / group_use` rows gets anyway).
    """
    if not 0 < group_use <= 1:
        raise SettingError(f"group_use must be in (0, 1], got {group_use}")
    rng = np.random.default_rng([seed, epoch])
    quotas = np.minimum(np.asarray(quotas, np.int64), index.class_rows)
    picked = [
        _class_sample(index, c, int(q), group_use, rng) for c, q in enumerate(quotas) if q > 0
    ]
    rows = np.concatenate(picked) if picked else np.zeros(0, np.int64)
    return locality_shuffle(index, rows, rng, shuffle_window)


def _class_sample(
    index: SplitIndex, c: int, q: int, group_use: float, rng: np.random.Generator
) -> np.ndarray:
    """`q` distinct rows of class c from enough randomly ordered row groups to hold q / group_use."""
    groups = index.class_groups[index.class_ptr[c] : index.class_ptr[c + 1]]
    groups = groups[rng.permutation(len(groups))]
    cum = np.concatenate([[0], np.cumsum(index.rg_rows[groups])])
    enough = min(len(groups), int(np.searchsorted(cum, q / group_use)))
    groups, cum = groups[:enough], cum[: enough + 1]
    positions = rng.choice(int(cum[-1]), q, replace=False)
    k = np.searchsorted(cum, positions, side="right") - 1
    return index.rg_start[groups[k]] + (positions - cum[k])


def fixed_rows(index: SplitIndex, per_class: int | None, seed: int) -> np.ndarray:
    """A fixed evaluation set: up to `per_class` rows of each class (all when None), in row-group order."""
    rng = np.random.default_rng([seed, 2**31 - 1])
    picked = []
    for c, n in enumerate(index.class_rows):
        k = int(n) if per_class is None else min(int(per_class), int(n))
        if k:
            picked.append(index.class_to_global(c, np.sort(rng.choice(int(n), k, replace=False))))
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, np.int64)


def locality_shuffle(
    index: SplitIndex, rows: np.ndarray, rng: np.random.Generator, window: int
) -> np.ndarray:
    """Random row-group order, rows of a group together, then a full shuffle inside each window."""
    group = np.searchsorted(index.rg_start, rows, side="right") - 1
    group_rank = rng.permutation(len(index.rg_rows))[group]
    rows = rows[np.lexsort((rng.random(len(rows)), group_rank))]
    for start in range(0, len(rows), max(1, window)):
        view = rows[start : start + window]
        view[:] = view[rng.permutation(len(view))]
    return rows


def shard(rows: np.ndarray, rank: int, world_size: int) -> np.ndarray:
    """This rank's contiguous, equal-sized share (the last `len % world_size` rows are left out)."""
    per_rank = len(rows) // world_size
    return rows[rank * per_rank : (rank + 1) * per_rank]


def eval_shard(rows: np.ndarray, rank: int, world_size: int) -> tuple[np.ndarray, np.ndarray]:
    """This rank's share of evaluation rows, padded to the same length on every rank, and a mask.

    Returns (rows, valid): shares of `len // world_size` or one more rows, contiguous, covering
    every row exactly once; ranks with the shorter share repeat one of their rows (or the first
    row) at the end with `valid` False, so every rank runs as many batches (collectives stay
    in step) and the padding is left out of the metrics and the per-class counts.
    """
    if not len(rows):
        return rows, np.zeros(0, bool)
    per_rank = -(-len(rows) // world_size)
    bounds = np.linspace(0, len(rows), world_size + 1).round().astype(np.int64)
    mine = rows[bounds[rank] : bounds[rank + 1]]
    pad = per_rank - len(mine)
    filler = np.full(pad, mine[0] if len(mine) else rows[0], rows.dtype)
    return np.concatenate([mine, filler]), np.arange(per_rank) < len(mine)


def batch_bounds(n: int, batch_size: int, drop_last: bool) -> np.ndarray:
    """Start offsets of the batches over n rows, plus n at the end."""
    stop = n - n % batch_size if drop_last else n
    return np.append(np.arange(0, stop, batch_size), stop) if stop else np.zeros(1, np.int64)


def worker_batches(num_batches: int, worker: int, num_workers: int) -> range:
    """A contiguous run of batches per worker, so each worker reads its own row groups."""
    per, extra = divmod(num_batches, num_workers)
    start = worker * per + min(worker, extra)
    return range(start, start + per + (worker < extra))
