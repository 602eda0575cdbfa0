"""QuickDrawDataModule: a Parquet store served as fixed-size per-class samples, one fresh sample per epoch.

Where the store comes from (an existing folder, a source converted once into a cache, or the
generated doodle set when neither is given) is [`quickdraw.data.sources`][quickdraw.data.sources]'s job;
`prepare_data` asks it for the store, and the rest of this module serves epochs from it.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from quickdraw.core.errors import QuickDrawError, SettingError
from quickdraw.data.augment import StrokeAugment
from quickdraw.data.dataset import StrokeDataset
from quickdraw.data.inputs import IMAGE, InputSpec, spec_config
from quickdraw.data.raster import RasterSpec
from quickdraw.data.sampling import epoch_rows, fixed_rows
from quickdraw.data.sources import StoreSource
from quickdraw.data.store import Store

log = logging.getLogger(__name__)

SAMPLING_MODES = ("adaptive", "fixed")


class NotEnoughData(QuickDrawError, ValueError):
    """The data cannot feed the run as configured: the message names the numbers and the settings to change."""


class QuickDrawDataModule(L.LightningDataModule):
    """Epochs of `quota[c]` drawings per class, turned into model inputs on the fly; fixed val/test sets.

    The defaults below are the project's defaults (`quickdraw/conf/data/quickdraw.yaml` sets only paths,
    the raster and the augmentation; [`quickdraw.core.config`][quickdraw.core.config]).

    store / source / cache_dir / synthetic_per_class / synthetic_seed / convert_settings: where the
      store comes from ([`quickdraw.data.sources.ensure_store`][quickdraw.data.sources.ensure_store]).
    sampling: `adaptive` (quotas N(1 - acc_c) + 0.25 N, set by the AdaptiveSampler callback after
      each validation) or `fixed` (N always). The one home of the sampling mode.
    per_class: N, drawings per class in an epoch. val_per_class / test_per_class: fixed
      evaluation sets per class (None: the whole split).
    raster: the `image` input. inputs: further named inputs (`temporal`, `sequence`: any
      [`quickdraw.data.inputs`][quickdraw.data.inputs] spec) a network may read. Only the inputs the model reads are
      built ([`serve`][quickdraw.data.datamodule.QuickDrawDataModule.serve]; `image` alone until told), each once per batch.
    shuffle_window: rows shuffled together. group_use: each row group read serves at least this
      share of its rows (I/O on big stores; 1.0 reads whole groups).
    """

    def __init__(
        self,
        store: str | None = None,
        source: str | None = None,
        cache_dir: str = "data",
        synthetic_per_class: int = 3000,
        synthetic_seed: int = 0,
        convert_settings: dict | None = None,
        sampling: str = "adaptive",
        per_class: int = 300,
        val_per_class: int | None = 100,
        test_per_class: int | None = 200,
        batch_size: int = 128,
        eval_batch_size: int | None = 256,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        raster: RasterSpec | None = None,
        augment: StrokeAugment | None = None,
        inputs: dict[str, InputSpec] | None = None,
        shuffle_window: int = 16384,
        group_use: float = 0.25,
        drop_last: bool = True,
        seed: int = 0,
    ):
        super().__init__()
        if sampling not in SAMPLING_MODES:
            raise SettingError(f"data.sampling must be one of {SAMPLING_MODES}, got {sampling!r}")
        self.source = StoreSource(
            store, source, cache_dir, synthetic_per_class, synthetic_seed, convert_settings
        )
        self.sampling = sampling
        self.per_class, self.val_per_class, self.test_per_class = (
            per_class,
            val_per_class,
            test_per_class,
        )
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.persistent_workers = persistent_workers and num_workers > 0
        self.raster = raster or RasterSpec()
        self.augment = augment
        if isinstance(inputs, DictConfig):
            # Hydra hands specs built inside a dict back as structured configs: rebuild the objects.
            inputs = OmegaConf.to_object(inputs)
        self.extra_inputs: dict[str, InputSpec] = dict(inputs or {})
        if IMAGE in self.extra_inputs:
            raise SettingError(
                f"data.inputs.{IMAGE} is data.raster; name the other inputs otherwise"
            )
        self.served: list[str] = [IMAGE]
        self.shuffle_window, self.group_use = shuffle_window, group_use
        self.drop_last, self.seed = drop_last, seed
        self.store: Store | None = None
        self.quotas: np.ndarray | None = None
        self._warned_short = False
        self._epochs_served = 0

    # -- the model's inputs ------------------------------------------------------------------------
    @property
    def inputs(self) -> dict[str, InputSpec]:
        """Every input this module can build, by name: `image` (`raster`) and `inputs`."""
        return {IMAGE: self.raster, **self.extra_inputs}

    def input_configs(self) -> dict[str, dict]:
        """The inputs other than `image` as plain data, as the model records them."""
        return {name: spec_config(spec) for name, spec in self.extra_inputs.items()}

    def serve(self, names: list[str]) -> None:
        """Build the named inputs (those the model reads) into every batch from now on."""
        unknown = [n for n in names if n not in self.inputs]
        if unknown:
            raise SettingError(
                f"the model reads inputs {unknown} the data does not offer (data.inputs: "
                f"{', '.join(self.extra_inputs) or 'none'}); add them under data.inputs"
            )
        self.served = list(names)

    def _served_inputs(self) -> dict[str, InputSpec]:
        specs = self.inputs  # read now: the raster schedule may have changed data.raster
        return {name: specs[name] for name in self.served}

    # -- the store --------------------------------------------------------------------------------
    def resolved_store(self) -> Path:
        """The store folder this module reads (computed, not built)."""
        return self.source.path

    def prepare_data(self) -> None:
        """Build the store if it does not exist yet (the first process of each node builds it)."""
        self.source.ensure()

    def setup(self, stage: str | None = None) -> None:
        if self.store is None:
            self.store = Store(self.source.ensure())
            if self.raster.channels > 1 and self.raster.time_source == "ms":
                self.store.require_times()
            if self.quotas is None:
                self.quotas = np.full(self.num_classes, self.per_class, np.int64)

    @property
    def classes(self) -> list[str]:
        """Class names, from the store's manifest (sorted)."""
        self._require_setup()
        return self.store.classes

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def origin(self) -> str:
        """Where the store's drawings come from: `"quickdraw"`, `"generated"`, `"mixed"`, or
        `""` (a store converted before manifests recorded it); models carry it to their exports'
        credit line ([`quickdraw.data.origin`][quickdraw.data.origin])."""
        self._require_setup()
        return self.store.manifest.origin

    # -- the per-class quotas ---------------------------------------------------------------------
    def set_quotas(self, quotas) -> None:
        """Drawings per class for the next training epoch (the adaptive sampler calls this)."""
        self._require_setup()
        q = np.asarray(quotas)
        if q.shape != (self.num_classes,):
            raise ValueError(
                f"quotas must have one entry per class ({self.num_classes}), got shape {q.shape}"
            )
        if not np.all(np.isfinite(q)) or (q < 0).any():
            raise ValueError("quotas must be finite and non-negative")
        self.quotas = np.rint(q).astype(np.int64)
        self.check_epoch_has_a_batch()

    # -- enough data to train on -----------------------------------------------------------------
    def check_enough_data(self, needs_val: bool) -> None:
        """Raise [`NotEnoughData`][quickdraw.data.datamodule.NotEnoughData] before training when an epoch yields no batch, or the
        validation set is empty while `needs_val` (best checkpoint, adaptive sampling, early stopping)."""
        self.check_epoch_has_a_batch()
        val = len(fixed_rows(self.store["val"], self.val_per_class, self.seed))
        if needs_val and val == 0:
            raise NotEnoughData(
                f"the validation split of {self.store.path} is empty "
                f"({self.store.manifest.rows.get('val', 0)} rows, data.val_per_class={self.val_per_class}), "
                "but this run needs validation (best checkpoint, adaptive sampling or early stopping). "
                "Convert again with a larger settings.val_fraction, or more drawings"
            )

    def check_epoch_has_a_batch(self) -> None:
        """Raise [`NotEnoughData`][quickdraw.data.datamodule.NotEnoughData] when the current quotas give this process no training batch."""
        self._require_setup()
        index = self.store["train"]
        drawings = int(np.minimum(self.quotas, index.class_rows).sum())
        world = self._rank()[1]
        per_rank = drawings // world
        if per_rank >= self.batch_size or (not self.drop_last and per_rank > 0):
            return
        raise NotEnoughData(
            f"an epoch holds {drawings} training drawings ({self.num_classes} classes, "
            f"data.per_class={self.per_class}, quotas capped by {int(index.class_rows.sum())} training rows)"
            + (f", {per_rank} per process for {world} processes" if world > 1 else "")
            + f": fewer than one batch of data.batch_size={self.batch_size} (drop_last drops it), "
            "so no training step would run. Lower data.batch_size, raise data.per_class, "
            "or give more drawings (a smaller settings.val_fraction/test_fraction keeps more for training)"
        )

    def state_dict(self) -> dict[str, Any]:
        return {"quotas": None if self.quotas is None else self.quotas.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("quotas") is not None:
            self.quotas = np.asarray(state["quotas"], np.int64)

    # -- loaders ----------------------------------------------------------------------------------
    def train_dataloader(self, epoch: int | None = None) -> DataLoader:
        self._require_setup()
        trainer = self._trainer
        if epoch is None:
            epoch = trainer.current_epoch if trainer is not None else self._epochs_served
        self._epochs_served = epoch + 1
        if trainer is not None and trainer.reload_dataloaders_every_n_epochs != 1:
            # Each epoch is a new sample with possibly new quotas: the loader must be rebuilt every epoch.
            trainer.reload_dataloaders_every_n_epochs = 1
        index = self.store["train"]
        short = np.flatnonzero(self.quotas > index.class_rows)
        if len(short) and not self._warned_short:  # once a run: quotas move, the data does not
            worst = short[np.argmax((self.quotas - index.class_rows)[short])]
            log.warning(
                "%d classes have fewer training drawings than their quota (e.g. %r: %d for %d); "
                "they are used whole each epoch",
                len(short),
                self.classes[worst],
                index.class_rows[worst],
                self.quotas[worst],
            )
            self._warned_short = True
        rows = epoch_rows(index, self.quotas, self.seed, epoch, self.shuffle_window, self.group_use)
        dataset = StrokeDataset(
            index,
            rows,
            self._served_inputs(),
            self.batch_size,
            self.augment,
            self.seed,
            epoch,
            *self._rank(),
            drop_last=self.drop_last,
        )
        return self._loader(dataset)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val", self.val_per_class)

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test", self.test_per_class)

    def _eval_loader(self, split: str, per_class: int | None) -> DataLoader:
        self._require_setup()
        index = self.store[split]
        rows = fixed_rows(index, per_class, self.seed)
        dataset = StrokeDataset(
            index,
            rows,
            self._served_inputs(),
            self.eval_batch_size,
            None,
            self.seed,
            0,
            *self._rank(),
            evaluation=True,
        )
        return self._loader(dataset)

    def _loader(self, dataset: StrokeDataset) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=None,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
        )

    def _rank(self) -> tuple[int, int]:
        trainer = self._trainer
        if trainer is not None:
            return trainer.global_rank, trainer.world_size
        return 0, 1

    @property
    def _trainer(self):
        return getattr(self, "trainer", None)

    def _require_setup(self) -> None:
        if self.store is None:
            raise RuntimeError(
                "call prepare_data() and setup() first (the Trainer does this for you)"
            )

    def describe(self) -> dict[str, Any]:
        """A summary worth logging: where the data is, how big, what an epoch holds."""
        self._require_setup()
        m = self.store.manifest
        return {
            "store": str(self.store.path),
            "classes": self.num_classes,
            "rows": m.rows,
            "epoch_drawings": int(self.quotas.sum()),
            "sampling": self.sampling,
            "raster": asdict(self.raster),
            "inputs": {name: self.inputs[name].describe() for name in self.served},
        }
