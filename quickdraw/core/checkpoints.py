"""Every checkpoint the project reads or writes goes through this module.

Reading: :func:`read_checkpoint` is the project's one ``torch.load``. It always passes
``weights_only=True``, so a crafted file cannot run code while it is unpickled, and every way
in (evaluate, predict, the demo, the report, ensemble members named in
``model.net.checkpoints``, TensorBoard's resume step) refuses a foreign file with the same
:class:`CheckpointError`. :func:`load_model` also checks the Hydra ``_target_`` names in the
hyperparameters against an allow-list before anything is built from them.

Writing: :class:`AtomicCheckpointIO` is Lightning's checkpoint writer, going through
:func:`quickdraw.core.files.atomic_open`, so a full disk or a kill never leaves half a checkpoint under
a final name (Lightning's default writer may truncate ``last.ckpt`` when the run folder is on
another filesystem than the temporary folder).

Layout: Lightning's checkpoint dict. ``QuickDrawModule`` keeps its network under ``net``
(state-dict keys ``net.*``), its plain-data construction arguments under ``hyper_parameters``, and
callbacks their state under ``callbacks[<class name>]``.
"""

from __future__ import annotations

import importlib
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from torch import nn

import quickdraw
from quickdraw.core.files import OUT_OF_SPACE, atomic_open

# Packages whose classes and functions a checkpoint may name as Hydra ``_target_``s: rebuilding the
# model instantiates them, so a crafted file naming anything else (``builtins.open``) would run it.
TRUSTED_TARGETS = ("quickdraw.models.", "torch.optim.")
# The two reasons a _target_ is refused: it names code outside TRUSTED_TARGETS, or a name under
# them that the installed versions lack (a checkpoint of another quickdraw or torch).
FOREIGN, MISSING = "foreign", "missing"
# The top-level checkpoint key holding the quickdraw version that wrote it (QuickDrawModule adds it).
VERSION_KEY = "quickdraw_version"
# QuickDrawModule stores its network as ``self.net``: its weights are the state-dict keys ``net.*``.
NET_PREFIX = "net."
# Errors torch.load raises for files that are not plain-data checkpoints (weights_only refuses
# pickled code with UnpicklingError; other junk fails in the zip reader or the unpickler).
_UNREADABLE = (
    pickle.UnpicklingError,
    RuntimeError,
    EOFError,
    zipfile.BadZipFile,
    KeyError,
    TypeError,
    AttributeError,
    ValueError,
    IndexError,
)


class CheckpointError(ValueError):
    """A file that is not a loadable checkpoint of this project (or not one that fits)."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written; the checkpoints already on disk are intact."""


# -- reading --------------------------------------------------------------------------------------
def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict at ``path``, loaded on CPU with ``weights_only=True`` (memory-mapped).

    Raises :class:`CheckpointError` when the file is missing, is not a torch checkpoint, or holds
    objects other than plain data (tensors, numbers, strings, lists, dicts).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except _UNREADABLE as e:
        raise CheckpointError(
            f"{path} is not a checkpoint of this project, or it holds objects that are not plain "
            f"data; refusing to load it (loading with weights_only=True). Details: "
            f"{str(e).splitlines()[0][:300] if str(e) else type(e).__name__}"
        ) from e
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path} holds a {type(ckpt).__name__}, not a Lightning checkpoint")
    return ckpt


def untrusted_targets(
    value: Any, where: str = "hyper_parameters", kind: str = FOREIGN
) -> list[str]:
    """Every ``_target_`` in ``value`` of ``kind``: :data:`FOREIGN` (not a module-level class or
    function of TRUSTED_TARGETS) or :data:`MISSING` (a name under TRUSTED_TARGETS that the installed
    quickdraw or torch does not have: a checkpoint of another version).

    The module part must import as a module and the object must be defined under a trusted package,
    so ``quickdraw.models.x.Path.touch`` (an attribute walk to another module) is refused too.
    Lightning's ``_instantiator`` hook is never used by this project and always foreign.
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
    """None for a trusted target, else :data:`FOREIGN` or :data:`MISSING`."""
    if not isinstance(target, str) or not target.startswith(TRUSTED_TARGETS) or "." not in target:
        return FOREIGN
    module_name, name = target.rsplit(".", 1)
    try:
        obj = getattr(importlib.import_module(module_name), name, None)
    except ImportError:
        return MISSING
    if obj is None:
        return MISSING
    trusted = callable(obj) and str(getattr(obj, "__module__", "")).startswith(TRUSTED_TARGETS)
    return None if trusted else FOREIGN


def written_by(ckpt: dict[str, Any]) -> str:
    """Which quickdraw wrote ``ckpt``, said against this one: checkpoints record their version
    under :data:`VERSION_KEY`; those written before they did are "an unknown version"."""
    from packaging.version import InvalidVersion, Version

    version = ckpt.get(VERSION_KEY)
    if not isinstance(version, str):
        return "an unknown version of quickdraw (the checkpoint does not record it)"
    try:
        theirs, ours = Version(version), Version(quickdraw.__version__)
    except InvalidVersion:
        return f"quickdraw {version[:40]!r}"
    if theirs == ours:
        return f"quickdraw {version}, this version"
    return f"quickdraw {version} ({'newer' if theirs > ours else 'older'} than this one)"


def load_model(ckpt_path: str | Path, map_location: str = "cpu"):
    """A trained ``QuickDrawModule`` in eval mode, in channels_last, built from its checkpoint alone.

    Raises :class:`CheckpointError` for foreign or crafted files: pickled code (refused by
    ``weights_only=True``), ``_target_`` names outside :data:`TRUSTED_TARGETS`, or a checkpoint
    without the class names and input specs (raster or named inputs) every model of this project records.
    """
    from quickdraw.models.module import QuickDrawModule

    path = Path(ckpt_path)
    ckpt = read_checkpoint(path)
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
    # NHWC weights and inputs: oneDNN's and cuDNN's fastest convolutions (scripts/bench_demo.py).
    model.use_channels_last()
    return model.to(map_location).eval()


def upgrade_hparams(hparams: dict[str, Any]) -> dict[str, Any]:
    """Hyperparameters of quickdraw 0.1 checkpoints in today's form (they load as they are).

    0.1 had ``bootstrap: "none" | "batch"``; the ensemble objective is now ``objective``.
    """
    hparams = dict(hparams)
    bootstrap = hparams.pop("bootstrap", None)
    net_target = str((hparams.get("net") or {}).get("_target_", ""))
    if bootstrap is not None and not hparams.get("objective") and net_target.endswith(".Ensemble"):
        hparams["objective"] = {
            "_target_": "quickdraw.models.objectives.EnsembleMembers",
            "bootstrap": bootstrap == "batch",
        }
    return hparams


def load_net_weights(net: nn.Module, path: str | Path) -> dict[str, Any]:
    """Load a single-model checkpoint's network weights (``net.*``) into ``net``; returns its hparams.

    Used for ensemble members taken from earlier runs. Raises :class:`CheckpointError` when the
    file is foreign, holds no network, or its network does not fit ``net``.
    """
    ckpt = read_checkpoint(path)
    state = ckpt.get("state_dict")
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not a Lightning checkpoint (no 'state_dict')")
    weights = {k[len(NET_PREFIX) :]: v for k, v in state.items() if k.startswith(NET_PREFIX)}
    if not weights:
        raise CheckpointError(
            f"{path} has no '{NET_PREFIX}*' weights: not a QuickDrawModule checkpoint"
        )
    hparams = ckpt.get("hyper_parameters") or {}
    try:
        net.load_state_dict(weights)
    except RuntimeError as err:
        raise CheckpointError(
            f"{path} does not fit the ensemble's member config (the checkpoint's net config was "
            f"{hparams.get('net')}); members must be single models with the same architecture, "
            f"classes and channels:\n{err}"
        ) from err
    return hparams


def callback_state(path: str | Path, callback: str) -> dict[str, Any] | None:
    """The state a callback (by class name, e.g. ``"AdaptiveSampler"``) saved in the checkpoint."""
    return read_checkpoint(path).get("callbacks", {}).get(callback)


def optimizer_steps(path: str | Path) -> int:
    """Optimiser steps taken when the checkpoint was saved: the step Lightning logs against."""
    ckpt = read_checkpoint(path)
    epoch_loop = ckpt.get("loops", {}).get("fit_loop", {}).get("epoch_loop.state_dict", {})
    return int(epoch_loop.get("_batches_that_stepped", ckpt.get("global_step", 0)))


# -- writing --------------------------------------------------------------------------------------
class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` for local paths, writing through :func:`quickdraw.core.files.atomic_open`."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None
    ) -> None:
        if "://" in str(path):  # remote storage (s3://, gs://): fsspec's own transactions apply
            return super().save_checkpoint(checkpoint, path, storage_options)
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        path = Path(path)
        try:
            with atomic_open(path, "wb") as f:
                torch.save(checkpoint, f)
        except OSError as e:
            raise CheckpointWriteError(e.errno, _write_error(path, e)) from e


def _write_error(path: Path, error: OSError) -> str:
    kept = [p for p in path.parent.glob("*.ckpt") if p.is_file()]
    kept.sort(key=lambda p: p.stat().st_mtime_ns, reverse=True)
    why = "the disk is full" if error.errno in OUT_OF_SPACE else (error.strerror or str(error))
    return (
        f"cannot write checkpoint {path}: {why}. Nothing was written under its name; the "
        f"checkpoints already in {path.parent} are intact"
        + (f" (newest: {kept[0].name})" if kept else " (none saved yet)")
        + ". Free some space and resume with ckpt_path=last."
    )
