"""The package's layout holds: each sub-package declares its public names, and they import cheaply.

Sub-packages import their names on first use (`lazy_loader`), so a declared name that no longer
exists would only fail when someone reached for it: every one is resolved here. Imports that must
stay light are checked in a fresh interpreter, where nothing else has loaded the heavy libraries.
"""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

SUBPACKAGES = [
    "quickdraw.core",
    "quickdraw.data",
    "quickdraw.data.formats",
    "quickdraw.metrics",
    "quickdraw.models",
    "quickdraw.models.components",
    "quickdraw.inference",
    "quickdraw.training",
    "quickdraw.training.callbacks",
    "quickdraw.evaluation",
    "quickdraw.deploy",
    "quickdraw.serving",
    "quickdraw.testing",
]


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_every_declared_public_name_resolves(name):
    package = importlib.import_module(name)
    assert package.__doc__ and package.__doc__.strip() and "TODO" not in package.__doc__
    assert package.__all__, f"{name} declares no public names"
    for attr in package.__all__:
        value = getattr(package, attr)
        # A name that is also a submodule would be shadowed by the module once imported.
        assert attr in dir(package) and value is getattr(package, attr), f"{name}.{attr}"


def loaded_after(statement: str, modules: list[str]) -> list[str]:
    """Which of `modules` a fresh interpreter has loaded after running `statement`."""
    probe = f"import sys; {statement}; print(' '.join(m for m in {modules!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return out.stdout.split()


@pytest.mark.parametrize(
    ("statement", "absent"),
    [
        # a plain nn.Module loads no Lightning: models/__init__ does not import the LightningModule
        ("import quickdraw.models.components.resnet", ["lightning", "torchmetrics"]),
        ("from quickdraw.models.components import StrokeRNN", ["lightning", "torchmetrics"]),
        # the data layer's strokes and readers need neither Lightning nor a model
        ("import quickdraw.data.strokes", ["lightning", "torch"]),
        ("import quickdraw.data.readers", ["lightning", "torch", "cv2"]),
        # the guessing game is pure Python over guesses: no model, no image library
        ("import quickdraw.serving.guessing", ["torch", "cv2", "lightning"]),
        # checkpoint reading is core: torch, never Lightning
        ("import quickdraw.core.checkpoints", ["lightning"]),
        ("import quickdraw.core", ["torch", "lightning"]),
    ],
)
def test_light_modules_import_without_heavy_libraries(statement, absent):
    assert loaded_after(statement, absent) == []


def test_the_probe_sees_a_heavy_import():
    """The check above can fail: importing the LightningModule does load Lightning."""
    assert loaded_after("import quickdraw.models.module", ["lightning"]) == ["lightning"]
