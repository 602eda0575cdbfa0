"""The model folder people share (`python -m quickdraw.export format=hub`): its layout, read without pickle.

    DIR/model.safetensors   the LightningModule's state dict (`net.*` ...), safetensors
    DIR/config.json         classes, input contract, data origin, the model's build config
                            (`hyper_parameters`, whose `_target_`s pass the allow-list of
                            [`quickdraw.models.loading`][quickdraw.models.loading]), the run's metrics
    DIR/model.onnx, model.json (and model.int8.onnx)   the ONNX export, where the model has one
    DIR/README.md           the model card

[`read_model_folder`][quickdraw.models.hub.read_model_folder] turns the folder into the dict a
checkpoint holds (`hyper_parameters`, `state_dict`, the version), read with `json` and
`safetensors` only: nothing is unpickled, so a shared folder cannot run code when it is loaded.
[`quickdraw.models.loading.load_model`][quickdraw.models.loading.load_model] takes such a folder
wherever it takes a `.ckpt` (evaluate, predict, the demo, export). The folder is written by
[`quickdraw.deploy.hub`][quickdraw.deploy.hub].
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from quickdraw.core.checkpoints import VERSION_KEY, CheckpointError

HUB_FORMAT = "quickdraw-hub"
FORMAT_VERSION = 1
CONFIG, WEIGHTS, CARD = "config.json", "model.safetensors", "README.md"
EXPORT_HINT = "python -m quickdraw.export ckpt_path=CKPT format=hub out=DIR"


class ModelFolderError(CheckpointError):
    """A folder given as a model that is not a readable `format=hub` folder; the message names
    the file and the fix."""


def read_config(folder: str | Path) -> dict[str, Any]:
    """`config.json` of a model folder, checked: its format, classes and build config.

    Raises [`ModelFolderError`][quickdraw.models.hub.ModelFolderError] naming the file for a
    folder without it, unreadable JSON, another format, or classes that disagree with the build
    config's.
    """
    folder = Path(folder)
    path = folder / CONFIG
    if not path.is_file():
        raise ModelFolderError(
            f"{folder} is a folder but not a model folder: {path.name} is missing. Pass a .ckpt "
            f"file as ckpt_path, or a folder written by `{EXPORT_HINT}`"
        )
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ModelFolderError(f"{path}: not readable JSON ({e}); export the folder again") from e
    if not isinstance(config, dict) or config.get("format") != HUB_FORMAT:
        found = config.get("format") if isinstance(config, dict) else type(config).__name__
        raise ModelFolderError(
            f"{path}: format {found!r}, not {HUB_FORMAT!r}; this folder was not written by "
            f"`{EXPORT_HINT}` (an ONNX export folder runs with backend=onnx)"
        )
    if int(config.get("format_version", 0)) > FORMAT_VERSION:
        raise ModelFolderError(
            f"{path}: format_version {config['format_version']} is newer than this quickdraw "
            f"reads ({FORMAT_VERSION}); upgrade quickdraw"
        )
    hparams = config.get("hyper_parameters")
    if not isinstance(hparams, dict):
        raise ModelFolderError(f"{path}: no 'hyper_parameters' (the model's build config)")
    if config.get("classes") != hparams.get("classes"):
        raise ModelFolderError(
            f"{path}: 'classes' ({len(config.get('classes') or [])} names) differs from "
            f"hyper_parameters.classes ({len(hparams.get('classes') or [])}): the file was edited "
            f"by hand; restore it, or export the folder again with `{EXPORT_HINT}`"
        )
    return config


def refuse_file_of_a_folder(path: str | Path) -> None:
    """Raise [`ModelFolderError`][quickdraw.models.hub.ModelFolderError] when `path` is one file
    of a model folder (`DIR/model.safetensors`, `DIR/config.json`): the folder is the model."""
    path = Path(path)
    if path.is_file() and (path.parent / CONFIG).is_file():
        try:
            ours = json.loads((path.parent / CONFIG).read_text()).get("format") == HUB_FORMAT
        except (OSError, UnicodeDecodeError, ValueError, AttributeError):
            ours = False
        if ours:
            raise ModelFolderError(
                f"{path} is one file of the model folder {path.parent}: pass the folder itself, "
                f"ckpt_path={path.parent}"
            )


def read_model_folder(folder: str | Path) -> dict[str, Any]:
    """A model folder as a checkpoint dict: `hyper_parameters`, `state_dict` (CPU tensors),
    `VERSION_KEY`. JSON and safetensors only; raises
    [`ModelFolderError`][quickdraw.models.hub.ModelFolderError] naming the file that is missing
    or unreadable."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    config = read_config(folder)
    weights = folder / config.get("files", {}).get("weights", WEIGHTS)
    if not weights.is_file():
        raise ModelFolderError(
            f"{weights}: missing; the folder's weights are this file. Copy the whole folder, or "
            f"export it again with `{EXPORT_HINT}`"
        )
    try:
        state = load_file(weights, device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelFolderError(
            f"{weights}: not a readable safetensors file ({str(e)[:200]}); export it again"
        ) from e
    return {
        "hyper_parameters": config["hyper_parameters"],
        "state_dict": state,
        VERSION_KEY: config.get("quickdraw_version"),
    }
