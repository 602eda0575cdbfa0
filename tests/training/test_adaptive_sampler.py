"""The adaptive sampler: its formula, and that the next epoch's sample follows the quotas it sets."""

from __future__ import annotations

from collections import Counter

import lightning as L
import numpy as np
import pytest
import torch

from quickdraw.data.conversion import convert
from quickdraw.data.convert_file import ConvertSettings
from quickdraw.data.datamodule import QuickDrawDataModule
from quickdraw.data.raster import RasterSpec
from quickdraw.metrics.hardness import adaptive_quotas
from quickdraw.training.callbacks.adaptive_sampler import AdaptiveSampler
from tests.helpers.drawings import squares_and_lines


def test_formula_matches_the_study():
    n = 100
    acc = np.array([0.0, 0.5, 1.0, 0.9, np.nan])
    # N(1 - acc) + 0.25 N; a class with no validation data keeps N.
    assert adaptive_quotas(acc, n).tolist() == [125, 75, 25, 35, 100]
    assert adaptive_quotas(acc, n, floor=0.5).tolist() == [150, 100, 50, 60, 100]


def test_mode_and_floor_are_checked():
    with pytest.raises(ValueError, match="adaptive.*fixed"):
        QuickDrawDataModule(sampling="sometimes")
    with pytest.raises(ValueError, match="floor"):
        AdaptiveSampler(floor=0.0)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("sampler")
    squares_and_lines(root / "src", {"a": 300, "b": 300, "c": 300}, suffix=".csv")
    convert(
        root / "src",
        root / "store",
        ConvertSettings(val_fraction=0.2, test_fraction=0.0),
        progress=False,
    )
    return root / "store"


class _AlwaysClassZero(L.LightningModule):
    """Predicts class 0 for everything: validation accuracy is 1 for class 0 and 0 for the others."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.labels_per_epoch: dict[int, Counter] = {}

    def training_step(self, batch, _):
        self.labels_per_epoch.setdefault(self.current_epoch, Counter()).update(
            batch["label"].tolist()
        )
        return (self.w * batch["image"].float().mean()).sum()

    def on_validation_epoch_start(self):
        self.seen = torch.zeros(3)

    def validation_step(self, batch, _):
        self.seen += torch.bincount(batch["label"], minlength=3)

    def val_class_accuracy(self):
        """Always class 0: class 0 all right, the others never."""
        return np.where(self.seen > 0, np.array([1.0, 0.0, 0.0]), np.nan)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


@pytest.mark.parametrize("mode, num_workers", [("adaptive", 0), ("adaptive", 2), ("fixed", 0)])
def test_next_epoch_follows_the_quotas(store, tmp_path, mode, num_workers):
    n = 40
    dm = QuickDrawDataModule(
        store=str(store),
        sampling=mode,
        per_class=n,
        batch_size=10,
        drop_last=False,
        raster=RasterSpec(size=16),
        num_workers=num_workers,
        val_per_class=20,
    )
    sampler = AdaptiveSampler()
    model = _AlwaysClassZero()
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, callbacks=[sampler], default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(model, datamodule=dm)
    assert model.labels_per_epoch[0] == {0: n, 1: n, 2: n}
    expected = {0: 10, 1: 50, 2: 50} if mode == "adaptive" else {0: n, 1: n, 2: n}
    assert model.labels_per_epoch[1] == expected
    assert sampler.quotas == [expected[c] for c in range(3)]
    assert sampler.state_dict()["quotas"] == dm.state_dict()["quotas"] == sampler.quotas
