"""A trained model rebuilt from its checkpoint alone, after checking every name it asks to build.

The checkpoint is read by [`quickdraw.core.checkpoints.read_checkpoint`][quickdraw.core.checkpoints.read_checkpoint] (`weights_only=True`:
no pickled code runs); its hyperparameters are plain data whose Hydra `_target_` names must lie
under `TRUSTED_TARGETS` before [`QuickDrawModule`][quickdraw.models.module.QuickDrawModule] is built
from them, since building a model instantiates whatever they name.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import torch

import quickdraw
from quickdraw.core.checkpoints import CheckpointError, read_checkpoint, written_by
from quickdraw.models.hub import read_model_folder, refuse_file_of_a_folder
from quickdraw.models.module import QuickDrawModule

# Packages whose classes and functions a checkpoint may name as Hydra `_target_`s: rebuilding the
# model instantiates them, so a crafted file naming anything else (`builtins.open`) would run it.
TRUSTED_TARGETS = ("quickdraw.models.", "torch.optim.")
# The two reasons a _target_ is refused: it names code outside TRUSTED_TARGETS, or a name under
# them that the installed versions lack (a checkpoint of another quickdraw or torch).
FOREIGN, MISSING = "foreign", "missing"
# Modules that checkpoints written before the layout by concern (issue 28) name, and where their
# classes live now; both sides lie under TRUSTED_TARGETS.
MOVED_MODULES = {
    "quickdraw.models.components.sequence": "quickdraw.models.components.lstm",
    "quickdraw.models.components.inputs": "quickdraw.models.components.factory",
}


def untrusted_targets(
    value: Any, where: str = "hyper_parameters", kind: str = FOREIGN
) -> list[str]:
    """Every `_target_` in `value` of `kind`: `FOREIGN` (not a module-level class or
    function of TRUSTED_TARGETS) or `MISSING` (a name under TRUSTED_TARGETS that the installed
    quickdraw or torch does not have: a checkpoint of another version).

    The module part must import as a module and the object must be defined under a trusted package,
    so `quickdraw.models.x.Path.touch` (an attribute walk to another module) is refused too.
    Lightning's `_instantiator` hook is never used by this project and always foreign.
    """
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{where}.{key}"
            hook = key == "_instantiator" and kind == FOREIGN
            if hook or (key == "_target_" and _target_kind(item) == kind):
                found.append(f"{here}={str(item)[:100]!r}")
            elif key not in ("_target_", "_instantiator"):
                found += untrusted_targets(item, here, kind)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found += untrusted_targets(item, f"{where}[{i}]", kind)
    return found


def _target_kind(target: Any) -> str | None:
    """None for a trusted target, else `FOREIGN` or `MISSING`."""
    if not isinstance(target, str) or not target.startswith(TRUSTED_TARGETS) or "." not in target:
        return FOREIGN
    module_name, name = target.rsplit(".", 1)
    try:
        obj = getattr(importlib.import_module(module_name), name, None)
    except ImportError:
        return MISSING
    if obj is None:
        return MISSING
    home = str(getattr(obj, "__module__", ""))
    # This module lies under TRUSTED_TARGETS too, but a model has no use for the loader itself.
    trusted = callable(obj) and home.startswith(TRUSTED_TARGETS) and home != __name__
    return None if trusted else FOREIGN


def load_model(ckpt_path: str | Path, map_location: str = "cpu"):
    """A trained `QuickDrawModule` in eval mode, in channels_last, built from its checkpoint alone
    (a `.ckpt`, or a model folder written by `export format=hub`).

    Raises [`CheckpointError`][quickdraw.core.checkpoints.CheckpointError] for foreign or crafted files: pickled code (refused by
    `weights_only=True`), `_target_` names outside `TRUSTED_TARGETS`, or a checkpoint
    without the class names and input specs (raster or named inputs) every model of this project records.
    """
    path = Path(ckpt_path)
    refuse_file_of_a_folder(path)
    # A folder is a shared model folder (quickdraw.models.hub): JSON and safetensors, no pickle.
    ckpt = read_model_folder(path) if path.is_dir() else read_checkpoint(path)
    hparams = upgrade_hparams(ckpt.get("hyper_parameters") or {})
    missing = untrusted_targets(hparams, kind=MISSING)
    if missing and not untrusted_targets(hparams):
        raise CheckpointError(
            f"{path} was written by {written_by(ckpt)} and names {'; '.join(missing[:3])} to build "
            f"its model, which this installation does not have (quickdraw {quickdraw.__version__}, "
            f"torch {torch.__version__}); refusing to load it. Load it with the version that "
            "wrote it, or train the model again with this one"
        )
    refused = untrusted_targets(hparams) + missing
    if refused:
        raise CheckpointError(
            f"{path} names code outside this project to build its model ({'; '.join(refused[:3])}); "
            f"refusing to load it (allowed: {', '.join(p + '*' for p in TRUSTED_TARGETS)})"
        )
    # Every model records its classes, and its inputs: the raster of its image (every model
    # before named inputs) and/or named inputs (quickdraw.data.inputs).
    for key, present in (
        ("classes", hparams.get("classes")),
        ("raster", hparams.get("raster") or hparams.get("inputs")),
    ):
        if not present:
            raise CheckpointError(
                f"{path}: checkpoint lacks '{key}' in its hyperparameters; not a quickdraw model"
            )
    try:
        model = QuickDrawModule(**hparams)
        model.load_state_dict(ckpt["state_dict"])
    except (KeyError, TypeError, RuntimeError, ValueError) as e:
        raise CheckpointError(
            f"{path}, written by {written_by(ckpt)}, does not rebuild into a model of this "
            f"version of quickdraw ({quickdraw.__version__}) "
            f"({str(e).splitlines()[0][:300]}). Checkpoints of quickdraw 0.1 load as they are; "
            "if this one was written by another version, train again or load it with that version."
        ) from e
    del ckpt
    # NHWC weights and inputs: oneDNN's and cuDNN's fastest convolutions (python -m benchmarks.demo).
    model.use_channels_last()
    return model.to(map_location).eval()


def upgrade_hparams(hparams: dict[str, Any]) -> dict[str, Any]:
    """Hyperparameters of older checkpoints in today's form, so that they load as they are.

    quickdraw 0.1 had `bootstrap: "none" | "batch"`; the ensemble objective is now `objective`.
    Checkpoints written before the package was laid out by concern name modules that have moved
    (`MOVED_MODULES`); their `_target_` names are rewritten before the allow-list check, so
    a rewritten name must pass it like any other.
    """
    hparams = _moved_targets(dict(hparams))
    bootstrap = hparams.pop("bootstrap", None)
    net_target = str((hparams.get("net") or {}).get("_target_", ""))
    if bootstrap is not None and not hparams.get("objective") and net_target.endswith(".Ensemble"):
        hparams["objective"] = {
            "_target_": "quickdraw.models.objectives.EnsembleMembers",
            "bootstrap": bootstrap == "batch",
        }
    return hparams


def _moved_targets(value: Any) -> Any:
    """`value` with every `_target_` in a module of `MOVED_MODULES` renamed to its new home."""
    if isinstance(value, dict):
        return {
            key: _moved_target(item) if key == "_target_" else _moved_targets(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(_moved_targets(item) for item in value)
    return value


def _moved_target(target: Any) -> Any:
    if not isinstance(target, str) or "." not in target:
        return target
    module, name = target.rsplit(".", 1)
    return f"{MOVED_MODULES[module]}.{name}" if module in MOVED_MODULES else target
