"""Checkpoints of this project made in seconds: untrained (the keys loading reads) or one real
optimiser step saved by Lightning."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

from quickdraw.data.raster import RasterSpec
from quickdraw.models.module import QuickDrawModule
from quickdraw.testing.checkpoints import save_module
from tests.helpers.configs import OPTIMIZER
from tests.helpers.drawings import DEMO_CLASSES

# Plain SGD keeps no optimiser state: the checkpoint stays ~45 MB.
SGD = {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.01}


def save_untrained(
    path: Path, net: dict, encoding: str = "gray", size: int = 32, classes=DEMO_CLASSES
) -> Path:
    """A checkpoint with the keys `load_from_checkpoint` reads, without training."""
    spec = RasterSpec(size=size, encoding=encoding)
    module = QuickDrawModule(
        net=net,
        optimizer=OPTIMIZER,
        classes=list(classes),
        in_channels=spec.channels,
        raster=asdict(spec),
    )
    return save_module(module, path)


def train_one_step(net: dict, path: Path, classes=("cat", "dog")) -> Path:
    """A real checkpoint of this project: one optimiser step, saved by Lightning."""
    model = QuickDrawModule(
        net=net, optimizer=SGD, classes=list(classes), raster={"size": 32},
        log_images_every_n_epochs=0,
    )  # fmt: skip
    batches = [
        {"image": torch.randint(0, 255, (1, 32, 32), dtype=torch.uint8), "label": i % 2}
        for i in range(4)
    ]
    trainer = L.Trainer(
        max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
        default_root_dir=str(path.parent),
    )  # fmt: skip
    trainer.fit(model, DataLoader(batches, batch_size=4))
    trainer.save_checkpoint(path)
    return path
