"""Fixtures the test folders share: the real sample and failing-input cases when present, a tiny
generated store and the training config that reads it, a full disk, and the trained models and
smoke runs several test files use; CPU only. Plain helpers live in `tests/helpers`.

Session fixtures build once, whichever test asks first, each in a folder of its own
(`tmp_path_factory.mktemp`): no test depends on another having run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

import pytest
from omegaconf import DictConfig

from quickdraw.data import synthetic
from tests.helpers.configs import OPTIMIZER, RESNET, TINY, compose_train
from tests.helpers.drawings import (
    DEMO_CLASSES,
    GENERATED_PER_CLASS,
    TINY_CLASSES,
)
from tests.helpers.paths import CASES, SAMPLE

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # nothing above imports torch: this still applies


# -- the real sample -----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """`../shared/data/quickdraw-sample` (train_simplified.zip, ndjson/), or a skip saying where."""
    if not (SAMPLE / "train_simplified.zip").is_file():
        pytest.skip(f"real Quick, Draw! sample not found at {SAMPLE}")
    return SAMPLE


@pytest.fixture
def cases() -> Path:
    """`../shared/cases`: the failing inputs the reliability guarantees are checked on."""
    if not (CASES / "README.md").is_file():
        pytest.skip(f"failing-input cases not found at {CASES}")
    return CASES


# -- a real full disk ----------------------------------------------------------------------------
@pytest.fixture
def full_disk(tmp_path) -> Iterator[Path]:
    """A 1 MiB tmpfs at `tmp_path/full` (unmounted after) with 16 KiB left free, or a skip
    where mounting one is refused (not root, or a container without the capability)."""
    mount = tmp_path / "full"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()[:100]})")
    free = os.statvfs(mount).f_bavail * os.statvfs(mount).f_frsize
    (mount / "filler").write_bytes(b"\0" * (free - 16 * 1024))  # others' files fill the disk
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


# -- a tiny generated store and the training config that reads it ---------------------------------
@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory) -> Path:
    """A data folder as `paths.data_dir` holds one: `csv/`, 80 generated drawings of each of
    the 4 first classes (one `<class>.csv.gz` each), and `stores/doodles/`, them converted with
    20% val and 20% test."""
    from quickdraw.data.conversion import convert
    from quickdraw.data.convert_file import ConvertSettings

    root = tmp_path_factory.mktemp("tiny-data")
    synthetic.generate(root / "csv", per_class=80, classes=TINY_CLASSES, seed=0, progress=False)
    settings = ConvertSettings(val_fraction=0.2, test_fraction=0.2)
    convert(root / "csv", root / "stores" / "doodles", settings, progress=False)
    return root


@pytest.fixture(scope="session")
def tiny_store(tiny_data_dir) -> Path:
    """The converted store of `tiny_data_dir` (read only: copy it to change it)."""
    return tiny_data_dir / "stores" / "doodles"


@pytest.fixture(scope="session")
def tiny_overrides(tiny_store) -> list[str]:
    """Command-line overrides that make any run seconds long, on `tiny_store`."""
    return [f"data.store={tiny_store}", *TINY, "data.test_per_class=8"]


@pytest.fixture(scope="session")
def tiny_config(tiny_store) -> Callable[..., DictConfig]:
    """`tiny_config(out, *overrides)`: the composed training config of a seconds-long run on
    `tiny_store` writing into `out`; `overrides` come last and win."""

    def make(out: Path, *overrides: str) -> DictConfig:
        return compose_train(out, f"data.store={tiny_store}", "data.test_per_class=8", *overrides)

    return make


# -- a model that tells four shapes apart (the demo's tests) -------------------------------------
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


@pytest.fixture(scope="session")
def demo_drawings(tmp_path_factory) -> list[tuple[str, list]]:
    """Raw drawings (canvas pixels, ms) of DEMO_CLASSES that `demo_checkpoint` never saw:
    another seed than its training data."""
    root = tmp_path_factory.mktemp("raw")
    out = []
    for word in DEMO_CLASSES:
        path = synthetic.write_raw_ndjson(root / f"{word}.ndjson", word, 8, seed=7)
        out += [(word, json.loads(line)["drawing"]) for line in path.read_text().splitlines()]
    return out


# -- two smoke runs on the generated set (the report's and the results notebook's tests) --------
@pytest.fixture(scope="session")
def generated_data_dir(tmp_path_factory) -> Path:
    """A `paths.data_dir` holding the generated set (GENERATED_PER_CLASS drawings of each of its
    15 classes), converted where a training run with `data.synthetic_per_class` looks for it."""
    from quickdraw.data.datamodule import QuickDrawDataModule

    root = tmp_path_factory.mktemp("generated-data")
    QuickDrawDataModule(cache_dir=str(root), synthetic_per_class=GENERATED_PER_CLASS).prepare_data()
    return root


@pytest.fixture(scope="session")
def smoke_sweep(generated_data_dir, tmp_path_factory) -> Path:
    """A sweep folder of two smoke runs on the generated set: `0` fixed and `1` adaptive
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
    """A finished two-epoch smoke training run folder on `tiny_store` (read only)."""
    from quickdraw.training.fit import train

    out = tmp_path_factory.mktemp("run")
    train(tiny_config(out, "experiment=smoke", "trainer.max_epochs=2"))
    return out
