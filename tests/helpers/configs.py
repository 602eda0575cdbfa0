"""The command configs composed as the commands compose them, and the settings of seconds-long runs."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

from quickdraw.cli import register
from tests.helpers.paths import ROOT

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
RESNET = {"_target_": "quickdraw.models.components.resnet.resnet18", "stem": "imagenet"}
OPTIMIZER = {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 3e-3}


def compose_config(name: str, overrides: list[str], **kwargs) -> DictConfig:
    """`quickdraw/conf/<name>.yaml` composed with `overrides` as the command would compose it.

    Registers the structured-config schemas first (defaults that live in Python signatures,
    quickdraw.cli.register), as the commands do when they start.
    """
    register()
    with initialize_config_dir(config_dir=str(ROOT / "quickdraw/conf"), version_base="1.3"):
        return compose(name, overrides=overrides, **kwargs)


def compose_train(out: Path, *overrides: str) -> DictConfig:
    """quickdraw/conf/train.yaml with TINY, then `overrides` (later ones win), writing into `out`."""
    cfg = compose_config("train", [*TINY, *overrides])
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
        cfg.paths.log_dir = str(out)
    return cfg


def demo_config(**overrides) -> DictConfig:
    """The demo's config with `key=value` overrides."""
    return compose_config("demo", [f"{k}={v}" for k, v in overrides.items()])
