"""Checkpoints written before the layout by concern (issue 28) load, and the allow-list still holds."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch

from quickdraw.core.checkpoints import CheckpointError
from quickdraw.models.loading import MOVED_MODULES, TRUSTED_TARGETS, load_model, upgrade_hparams
from quickdraw.models.module import QuickDrawModule

RESNET = {"_target_": "quickdraw.models.components.resnet.resnet18"}
# The stroke-sequence network as checkpoints of the flat layout name it (its module was `sequence`).
OLD_RNN = {
    "_target_": "quickdraw.models.components.sequence.StrokeRNN",
    "input": "sequence",
    "conv_channels": [4],
    "kernel_sizes": [3],
    "hidden": 4,
    "layers": 1,
}
INPUTS = {"sequence": {"kind": "sequence", "max_points": 16}}


def old_style_checkpoint(path: Path) -> Path:
    """A mixed ensemble saved as before the move: its hyperparameters name the old module paths."""
    new_rnn = {**OLD_RNN, "_target_": "quickdraw.models.components.lstm.StrokeRNN"}
    net = {"_target_": "quickdraw.models.components.ensemble.Ensemble", "member": None}
    module = QuickDrawModule(
        net={**net, "members": [RESNET, new_rnn]},
        optimizer={"_target_": "torch.optim.AdamW", "_partial_": True},
        classes=["line", "square"],
        raster={"size": 16},
        inputs=INPUTS,
    )
    hparams = {**dict(module.hparams), "net": {**net, "members": [RESNET, OLD_RNN]}}
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": hparams}, path)
    return path


def test_a_checkpoint_naming_the_old_module_paths_loads(tmp_path):
    path = old_style_checkpoint(tmp_path / "old.ckpt")
    saved = torch.load(path, weights_only=True)
    model = load_model(path)
    assert type(model.net.members[1]).__module__ == "quickdraw.models.components.lstm"
    assert model.hparams["net"]["members"][1]["_target_"].endswith(".lstm.StrokeRNN")
    for name, weight in model.state_dict().items():
        assert torch.equal(weight, saved["state_dict"][name]), name


def test_every_moved_module_is_trusted_and_exists_under_its_new_name():
    for old, new in MOVED_MODULES.items():
        assert old.startswith(TRUSTED_TARGETS) and new.startswith(TRUSTED_TARGETS)
        importlib.import_module(new)
        with pytest.raises(ImportError):
            importlib.import_module(old)


def test_renaming_old_paths_lets_nothing_untrusted_through(tmp_path):
    """Only whole module names are renamed, and a renamed name passes the allow-list like any other:
    a function the old module merely imported from elsewhere is still refused."""
    walk = {"loss": {"_target_": "quickdraw.models.components.sequence.torch.load"}}
    assert upgrade_hparams(walk) == walk
    path = old_style_checkpoint(tmp_path / "old.ckpt")
    ckpt = torch.load(path, weights_only=True)
    imported = "quickdraw.models.components.sequence.pack_padded_sequence"
    ckpt["hyper_parameters"]["loss"] = {"_target_": imported}
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="outside this project.*lstm.pack_padded_sequence"):
        load_model(path)


@pytest.mark.parametrize(
    "target", ["quickdraw.models.loading.load_model", "quickdraw.models.load_model"]
)
def test_the_loader_itself_is_not_a_trusted_target(tmp_path, target):
    """It lies under the trusted `quickdraw.models.` but would read any file a checkpoint names."""
    path = old_style_checkpoint(tmp_path / "old.ckpt")
    ckpt = torch.load(path, weights_only=True)
    ckpt["hyper_parameters"]["loss"] = {"_target_": target, "ckpt_path": str(path)}
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="outside this project"):
        load_model(path)
