"""Reading checkpoints, and the facts of their layout every reader and writer shares (no Lightning).

[`read_checkpoint`][quickdraw.core.checkpoints.read_checkpoint] is the project's one `torch.load`. It always passes `weights_only=True`,
so a crafted file cannot run code while it is unpickled, and every way in (evaluate, predict, the
demo, the report, ensemble members named in `model.net.checkpoints`, TensorBoard's resume step)
refuses a foreign file with the same [`CheckpointError`][quickdraw.core.checkpoints.CheckpointError]. Building a model from a checkpoint
(with its `_target_` allow-list) is [`quickdraw.models.loading.load_model`][quickdraw.models.loading.load_model]; writing one is
Lightning's job, through [`quickdraw.training.checkpoint_io.AtomicCheckpointIO`][quickdraw.training.checkpoint_io.AtomicCheckpointIO].

Layout: Lightning's checkpoint dict. `QuickDrawModule` keeps its network under `net`
(state-dict keys `net.*`), its plain-data construction arguments under `hyper_parameters`, the
quickdraw version that wrote it under `VERSION_KEY`, and callbacks their state under
`callbacks[<class name>]`.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

import quickdraw
from quickdraw.core.errors import QuickDrawError

# The top-level checkpoint key holding the quickdraw version that wrote it (QuickDrawModule adds it).
VERSION_KEY = "quickdraw_version"
# QuickDrawModule stores its network as `self.net`: its weights are the state-dict keys `net.*`.
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


class CheckpointError(QuickDrawError, ValueError):
    """A file that is not a loadable checkpoint of this project (or not one that fits)."""


class CheckpointWriteError(QuickDrawError, OSError):
    """A checkpoint could not be written; the checkpoints already on disk are intact."""


# -- reading --------------------------------------------------------------------------------------
def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict at `path`, loaded on CPU with `weights_only=True` (memory-mapped).

    Raises [`CheckpointError`][quickdraw.core.checkpoints.CheckpointError] when the file is missing, is not a torch checkpoint, or holds
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


def written_by(ckpt: dict[str, Any]) -> str:
    """Which quickdraw wrote `ckpt`, said against this one: checkpoints record their version
    under `VERSION_KEY`; those written before they did are "an unknown version"."""
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


def load_net_weights(net: nn.Module, path: str | Path) -> dict[str, Any]:
    """Load a single-model checkpoint's network weights (`net.*`) into `net`; returns its hparams.

    Used for ensemble members taken from earlier runs. Raises [`CheckpointError`][quickdraw.core.checkpoints.CheckpointError] when the
    file is foreign, holds no network, or its network does not fit `net`.
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
    """The state a callback (by class name, e.g. `"AdaptiveSampler"`) saved in the checkpoint."""
    return read_checkpoint(path).get("callbacks", {}).get(callback)


def optimizer_steps(path: str | Path) -> int:
    """Optimiser steps taken when the checkpoint was saved: the step Lightning logs against."""
    ckpt = read_checkpoint(path)
    epoch_loop = ckpt.get("loops", {}).get("fit_loop", {}).get("epoch_loop.state_dict", {})
    return int(epoch_loop.get("_batches_that_stepped", ckpt.get("global_step", 0)))
