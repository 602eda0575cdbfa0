"""Seconds-long CPU training runs for the tests: a 4-class generated store and small configs."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

from quickdraw.data import synthetic
from quickdraw.data.convert import ConvertSettings, convert

ROOT = Path(__file__).resolve().parents[1]
CLASSES = sorted(synthetic.CLASSES)[:4]
# Small everything: 16 drawings a class an epoch at 32 px, in-process loading, no progress bar.
TINY = [
    "data.per_class=16",
    "data.val_per_class=8",
    "data.batch_size=16",
    "data.eval_batch_size=32",
    "data.raster.size=32",
    "data.num_workers=0",
    "trainer.accelerator=cpu",
    "callbacks.progress_bar.refresh_rate=0",
]


def make_store(root: Path) -> Path:
    """80 generated drawings of each of CLASSES, converted with 20% val and 20% test."""
    synthetic.generate(root / "csv", per_class=80, classes=CLASSES, seed=0, progress=False)
    settings = ConvertSettings(val_fraction=0.2, test_fraction=0.2)
    convert(root / "csv", root / "store", settings, progress=False)
    return root / "store"


def compose_train(out: Path, *overrides: str) -> DictConfig:
    """conf/train.yaml with TINY, then ``overrides`` (later ones win), writing into ``out``."""
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[*TINY, *overrides])
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
        cfg.paths.log_dir = str(out)
    return cfg
