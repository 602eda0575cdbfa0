"""The package as a user installs it: a wheel holding every file of `quickdraw/` (configs, page and
sketchpad assets), installed into a fresh environment with no checkout, runs from any folder.

There, `quickdraw-train` takes a user's own experiment from a folder of theirs (`--config-dir`)
and `quickdraw-evaluate` finds the run's checkpoint; both write under the folder they start in
(`outputs/`, `data/`), never into the checkout.

The fresh environment gets its dependencies without a download: a `.pth` file lists this
environment's site-packages, and Python adds that folder to the path without running the `.pth`
files inside it, so the checkout's editable install stays out of sight.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.helpers.paths import ROOT

pytestmark = pytest.mark.slow

# A user's experiment, kept in their own folder: the smoke run made smaller (fewer generated
# drawings, one epoch), loading no data in worker processes.
MINE = """\
# @package _global_
defaults:
  - smoke

experiment_name: mine
data:
  synthetic_per_class: 120
  num_workers: 0
trainer:
  max_epochs: 1
"""


def build_wheel(out: Path) -> Path:
    """The wheel of a copy of the checkout (building in place would write into the checkout)."""
    src = out / "src"
    for package in ("quickdraw", "hydra_plugins"):  # hydra_plugins: the Optuna sweeper
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    run([sys.executable, "-m", "pip", "--disable-pip-version-check", "wheel", "--no-deps",
         "--no-build-isolation", "--no-index", "-q", "-w", str(out), str(src)])  # fmt: skip
    return next(out.glob("quickdraw-*.whl"))


def fresh_environment(folder: Path, wheel: Path) -> Path:
    """A new virtual environment holding only `wheel`; returns its `bin` folder."""
    run([sys.executable, "-m", "venv", "--without-pip", str(folder)])
    python = folder / "bin" / "python"
    purelib = run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"])
    (Path(purelib.stdout.strip()) / "dependencies.pth").write_text(
        sysconfig.get_path("purelib") + "\n"
    )
    run([sys.executable, "-m", "pip", "--disable-pip-version-check", "--python", str(python),
         "install", "--no-deps", "--no-index", "-q", str(wheel)])  # fmt: skip
    return folder / "bin"


def run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`cmd` as a user types it: no PYTHONPATH, no QUICKDRAW_DATA; fails the test with its stderr."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "QUICKDRAW_DATA")}
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stderr[-4000:]}"
    return done


def checkout_outputs() -> set[Path]:
    """The run and data folders in the checkout, where a command that took the checkout for its
    root would add one."""
    places = ("outputs/train/runs", "outputs/evaluate", "data/synthetic", "data/stores")
    return {p for place in places if (ROOT / place).is_dir() for p in (ROOT / place).iterdir()}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """The `bin` folder of a fresh environment where the wheel of this checkout is installed."""
    return fresh_environment(tmp_path_factory.mktemp("fresh"), wheel)


def test_the_wheel_holds_every_file_of_the_package(wheel):
    shipped = {n for n in zipfile.ZipFile(wheel).namelist() if n.startswith("quickdraw/")}
    package = {p.relative_to(ROOT).as_posix() for p in (ROOT / "quickdraw").rglob("*")
               if p.is_file() and "__pycache__" not in p.parts}  # fmt: skip
    assert package - shipped == set()
    assert {"quickdraw/conf/train.yaml", "quickdraw/conf/experiment/smoke.yaml"} <= shipped
    # Hydra instantiates a sweeper only from a class in the hydra_plugins namespace
    assert "hydra_plugins/quickdraw_optuna/__init__.py" in zipfile.ZipFile(wheel).namelist()


def test_installed_commands_run_from_any_folder_with_a_users_experiment(installed, tmp_path):
    before, top = checkout_outputs(), sorted(p.name for p in ROOT.iterdir())
    where = run(
        [str(installed / "python"), "-c", "import quickdraw; print(quickdraw.__file__)"], tmp_path
    )
    assert Path(where.stdout.strip()).is_relative_to(installed.parent), "the checkout was imported"
    found = run([str(installed / "python"), "-c", "from hydra.core.plugins import Plugins; "
                 "import hydra_plugins.quickdraw_optuna as p; print(p.__file__); "
                 "print(sorted(Plugins.instance().class_name_to_class))"], tmp_path).stdout  # fmt: skip
    assert Path(found.splitlines()[0]).is_relative_to(installed.parent)
    assert "hydra_plugins.quickdraw_optuna.OptunaSweeper" in found, "Hydra misses the sweeper"
    user = tmp_path / "my_configs"
    (user / "experiment").mkdir(parents=True)
    (user / "experiment" / "mine.yaml").write_text(MINE)
    work = tmp_path / "work"  # empty: nothing of the project is here
    work.mkdir()

    run([str(installed / "quickdraw-train"), "--config-dir", str(user), "experiment=mine",
         "callbacks.progress_bar.refresh_rate=0"], cwd=work)  # fmt: skip
    (trained,) = (work / "outputs" / "train" / "runs").iterdir()
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["experiment"] == "mine" and metrics["epochs"] == 1  # smoke's 2, overridden
    assert next((work / "data" / "synthetic").glob("store-*"), None) is not None

    store = next((work / "data" / "synthetic").glob("store-*")).relative_to(work)
    run([str(installed / "quickdraw-evaluate"), f"store={store}"], cwd=work)
    (evaluated,) = (work / "outputs" / "evaluate").iterdir()
    scores = json.loads((evaluated / "metrics.json").read_text())
    assert scores["ckpt_path"] == metrics["best_ckpt"]  # the latest run's, found from the folder
    assert Path(scores["ckpt_path"]).is_relative_to(work)
    assert scores["test/map3"] == pytest.approx(metrics["test/map3"])  # same model, same split

    assert sorted(p.name for p in ROOT.iterdir()) == top
    assert checkout_outputs() == before
