"""Shared fixtures: hand-made Quick, Draw! rows, a tiny generated store and the training config
that reads it, the real sample when present, and the trained models and smoke runs several test
files share; CPU only.

Session fixtures build once, whichever test asks first, each in a folder of its own
(``tmp_path_factory.mktemp``): no test depends on another having run.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

from quickdraw.core import config as configs
from quickdraw.data import synthetic  # no torch: CUDA_VISIBLE_DEVICES below still applies

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "data" / "quickdraw-sample"
CASES = SAMPLE.parents[1] / "cases"  # small failing inputs users met (../shared/cases/README.md)


def compose_config(name: str, overrides: list[str], **kwargs) -> DictConfig:
    """``quickdraw/conf/<name>.yaml`` composed with ``overrides`` as the command would compose it.

    Registers the structured-config schemas first (defaults that live in Python signatures,
    quickdraw.core.config), as the commands do when they start.
    """
    configs.register()
    with initialize_config_dir(config_dir=str(ROOT / "quickdraw/conf"), version_base="1.3"):
        return compose(name, overrides=overrides, **kwargs)


HEADER = ["countrycode", "drawing", "key_id", "recognized", "timestamp", "word"]
SQUARE = [[[10, 200, 200, 10, 10], [10, 10, 200, 200, 10]]]
LINE = [[[0, 255], [128, 128]]]


# -- hand-made rows ------------------------------------------------------------------------------
def kaggle_row(
    key_id,
    word,
    drawing=SQUARE,
    countrycode="US",
    recognized="True",
    timestamp="2017-03-11 14:47:44.05242",
):
    """One row of Kaggle's train_simplified layout (drawing given as lists, or as raw text)."""
    text = drawing if isinstance(drawing, str) else json.dumps(drawing)
    return [countrycode, text, str(key_id), recognized, timestamp, word]


def write_csv(path: Path, rows, header=HEADER) -> Path:
    """Write a Kaggle-layout CSV (gzip when the name ends in .gz)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", newline="") as f:
        w = csv.writer(f)
        if header:
            w.writerow(header)
        w.writerows(rows)
    return path


def squares_and_lines(
    folder: Path, rows: dict[str, int], key_base: int = 1000, suffix: str = ".csv.gz"
) -> Path:
    """One Kaggle CSV per word in ``folder``, ``rows[word]`` rows of it alternating a line and a
    square; word ``w`` (in order) gets key_ids ``key_base * (w + 1) + i``. Returns ``folder``."""
    for w, (word, n) in enumerate(rows.items()):
        drawings = [
            kaggle_row(key_base * (w + 1) + i, word, SQUARE if i % 2 else LINE) for i in range(n)
        ]
        write_csv(folder / f"{word}{suffix}", drawings)
    return folder


# -- the real sample -----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """``../shared/data/quickdraw-sample`` (train_simplified.zip, ndjson/), or a skip saying where."""
    if not (SAMPLE / "train_simplified.zip").is_file():
        pytest.skip(f"real Quick, Draw! sample not found at {SAMPLE}")
    return SAMPLE


@pytest.fixture
def cases() -> Path:
    """``../shared/cases``: the failing inputs the reliability guarantees are checked on."""
    if not (CASES / "README.md").is_file():
        pytest.skip(f"failing-input cases not found at {CASES}")
    return CASES


# -- a tiny generated store and the training config that reads it ---------------------------------
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


TINY_CLASSES = sorted(synthetic.CLASSES)[:4]


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory) -> Path:
    """A data folder as ``paths.data_dir`` holds one: ``csv/``, 80 generated drawings of each of
    the 4 first classes (one ``<class>.csv.gz`` each), and ``stores/doodles/``, them converted with
    20% val and 20% test."""
    from quickdraw.data.convert import ConvertSettings, convert

    root = tmp_path_factory.mktemp("tiny-data")
    synthetic.generate(root / "csv", per_class=80, classes=TINY_CLASSES, seed=0, progress=False)
    settings = ConvertSettings(val_fraction=0.2, test_fraction=0.2)
    convert(root / "csv", root / "stores" / "doodles", settings, progress=False)
    return root


@pytest.fixture(scope="session")
def tiny_store(tiny_data_dir) -> Path:
    """The converted store of ``tiny_data_dir`` (read only: copy it to change it)."""
    return tiny_data_dir / "stores" / "doodles"


@pytest.fixture(scope="session")
def tiny_overrides(tiny_store) -> list[str]:
    """Command-line overrides that make any run seconds long, on ``tiny_store``."""
    return [f"data.store={tiny_store}", *TINY, "data.test_per_class=8"]


def compose_train(out: Path, *overrides: str) -> DictConfig:
    """quickdraw/conf/train.yaml with TINY, then ``overrides`` (later ones win), writing into ``out``."""
    cfg = compose_config("train", [*TINY, *overrides])
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
        cfg.paths.log_dir = str(out)
    return cfg


@pytest.fixture(scope="session")
def tiny_config(tiny_store) -> Callable[..., DictConfig]:
    """``tiny_config(out, *overrides)``: the composed training config of a seconds-long run on
    ``tiny_store`` writing into ``out``; ``overrides`` come last and win."""

    def make(out: Path, *overrides: str) -> DictConfig:
        return compose_train(out, f"data.store={tiny_store}", "data.test_per_class=8", *overrides)

    return make


# -- a model that tells four shapes apart (the demo's tests) -------------------------------------
# Shapes a mouse can draw and that look nothing alike: the browser test draws two of them.
DEMO_CLASSES = ("circle", "square", "triangle", "zigzag")
RESNET = {"_target_": "quickdraw.models.components.resnet.resnet18", "stem": "imagenet"}
OPTIMIZER = {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 3e-3}


@pytest.fixture(scope="session")
def demo_checkpoint(tmp_path_factory) -> Path:
    """A ResNet18 that tells DEMO_CLASSES apart at 32 px, trained for ~15 s (2 idle cores) on
    generated doodles; shared by the demo's unit and browser tests."""
    import lightning as L

    from quickdraw.data.augment import StrokeAugment
    from quickdraw.data.datamodule import QuickDrawDataModule
    from quickdraw.data.raster import RasterSpec
    from quickdraw.models.module import QuickDrawModule

    root = tmp_path_factory.mktemp("demo-model")
    synthetic.generate(
        root / "csv", per_class=600, classes=DEMO_CLASSES, seed=0, progress=False, workers=1
    )
    spec = RasterSpec(size=32)
    dm = QuickDrawDataModule(
        source=str(root / "csv"), cache_dir=str(root / "cache"), sampling="fixed", per_class=320,
        val_per_class=30, test_per_class=30, batch_size=64, raster=spec, augment=StrokeAugment(),
    )  # fmt: skip
    dm.prepare_data()
    dm.setup("fit")
    L.seed_everything(0)
    model = QuickDrawModule(
        net=RESNET,
        optimizer=OPTIMIZER,
        classes=dm.classes,
        raster=asdict(spec),
        log_images_every_n_epochs=0,
        data_origin=dm.origin,
    )
    trainer = L.Trainer(
        max_epochs=3, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(root),
    )  # fmt: skip
    trainer.fit(model, datamodule=dm)
    ckpt = root / "model.ckpt"
    trainer.save_checkpoint(ckpt, weights_only=False)
    return ckpt


# -- two smoke runs on the generated set (the report's and the results notebook's tests) --------
GENERATED_PER_CLASS = 120  # the 15-class generated set, small: seconds to make


@pytest.fixture(scope="session")
def generated_data_dir(tmp_path_factory) -> Path:
    """A ``paths.data_dir`` holding the generated set (GENERATED_PER_CLASS drawings of each of its
    15 classes), converted where a training run with ``data.synthetic_per_class`` looks for it."""
    from quickdraw.data.datamodule import QuickDrawDataModule

    root = tmp_path_factory.mktemp("generated-data")
    QuickDrawDataModule(cache_dir=str(root), synthetic_per_class=GENERATED_PER_CLASS).prepare_data()
    return root


@pytest.fixture(scope="session")
def smoke_sweep(generated_data_dir, tmp_path_factory) -> Path:
    """A sweep folder of two smoke runs on the generated set: ``0`` fixed and ``1`` adaptive
    sampling, trained by the documented command (the README's, and the results notebook's)."""
    sweep = tmp_path_factory.mktemp("smoke-sweep")
    cmd = [sys.executable, "-m", "quickdraw.train", "--multirun", "experiment=smoke",
           "data.sampling=fixed,adaptive", f"hydra.sweep.dir={sweep}",
           f"paths.data_dir={generated_data_dir}", f"data.synthetic_per_class={GENERATED_PER_CLASS}",
           "callbacks.progress_bar.refresh_rate=0"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stderr[-4000:]}"
    return sweep


@pytest.fixture(scope="session")
def smoke_run(tiny_config, tmp_path_factory) -> Path:
    """A finished two-epoch smoke training run folder on ``tiny_store`` (read only)."""
    from quickdraw.training.train import train

    out = tmp_path_factory.mktemp("run")
    train(tiny_config(out, "experiment=smoke", "trainer.max_epochs=2"))
    return out


def run_module(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m module args`` as a user runs it, its Hydra folder under ``cwd``."""
    return subprocess.run(
        [sys.executable, "-m", module, *args, f"hydra.run.dir={cwd}/hydra-{module}"],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )
