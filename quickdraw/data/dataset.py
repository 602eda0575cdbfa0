"""The iterable dataset: reads a plan's rows block by block, augments strokes and builds the model's inputs for whole batches.

It yields ready batches (`batch_size=None` in the DataLoader) because per-sample `__getitem__`
plus collation would cost more than drawing the image itself.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from quickdraw.data.augment import StrokeAugment
from quickdraw.data.inputs import IMAGE, InputSpec, build_inputs, to_tensors
from quickdraw.data.raster import RasterSpec
from quickdraw.data.sampling import batch_bounds, eval_shard, shard, worker_batches
from quickdraw.data.store import SplitIndex

Batch = dict[str, torch.Tensor | tuple[torch.Tensor, ...]]


class StrokeDataset(IterableDataset):
    """Serves `rows` (global ids, in order) of one split as batches of model inputs.

    `inputs`: the named inputs to build ([`quickdraw.data.inputs`][quickdraw.data.inputs]), each once per batch from
    the same augmented strokes; a RasterSpec alone is the `image` input.

    Each rank takes an equal contiguous share, each DataLoader worker a contiguous run of its batches.
    Rows are read in blocks of `read_block` rows so every row group in a block is decoded once.
    """

    def __init__(
        self,
        index: SplitIndex,
        rows: np.ndarray,
        inputs: RasterSpec | dict[str, InputSpec],
        batch_size: int,
        augment: StrokeAugment | None = None,
        seed: int = 0,
        epoch: int = 0,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
        read_block: int = 8192,
        evaluation: bool = False,
    ):
        self.index = index
        rows = np.asarray(rows, np.int64)
        # Training drops up to world_size - 1 rows of a fresh sample; evaluation scores every row
        # once, padding shares to equal length and marking the padding in batch["valid"].
        self.valid = None
        if evaluation:
            self.rows, self.valid = eval_shard(rows, rank, world_size)
        else:
            self.rows = shard(rows, rank, world_size)
        self.inputs = {IMAGE: inputs} if isinstance(inputs, RasterSpec) else dict(inputs)
        self.augment = augment
        self.batch_size, self.drop_last = batch_size, drop_last
        self.seed, self.epoch, self.rank = seed, epoch, rank
        self.read_block = max(batch_size, read_block - read_block % batch_size)
        self.bounds = batch_bounds(len(self.rows), batch_size, drop_last)

    def __len__(self) -> int:
        return len(self.bounds) - 1

    def __iter__(self) -> Iterator[Batch]:
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info else (0, 1)
        mine = worker_batches(len(self), worker, num_workers)
        if not len(mine):
            return
        rng = np.random.default_rng([self.seed, self.epoch, self.rank, worker, 1])
        per_block = self.read_block // self.batch_size
        for b0 in range(mine.start, mine.stop, per_block):
            b1 = min(b0 + per_block, mine.stop)
            first, last = self.bounds[b0], self.bounds[b1]
            block = self.index.gather(self.rows[first:last])
            for b in range(b0, b1):
                lo, hi = self.bounds[b] - first, self.bounds[b + 1] - first
                batch = self.make_batch(block.select(np.arange(lo, hi)), rng)
                if self.valid is not None:
                    batch["valid"] = torch.from_numpy(
                        self.valid[self.bounds[b] : self.bounds[b + 1]]
                    )
                yield batch

    def make_batch(self, rows, rng: np.random.Generator) -> Batch:
        """Each named input (`image`: (B, C, H, W) uint8), `label` and `key_id` (B,) int64;
        evaluation adds `valid` (B,) bool."""
        strokes = self.augment(rows.strokes, rng) if self.augment is not None else rows.strokes
        return {
            **to_tensors(build_inputs(self.inputs, strokes)),
            "label": torch.from_numpy(rows.labels),
            "key_id": torch.from_numpy(rows.key_ids),
        }
