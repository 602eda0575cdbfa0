"""Running a trained model over drawings: strokes in, class probabilities out, test-time augmentation included.

Shared by evaluate, predict and the demo. Checkpoints are loaded by
[`quickdraw.models.loading.load_model`][quickdraw.models.loading.load_model]; input files are streamed by
[`quickdraw.data.input_files`][quickdraw.data.input_files].
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from quickdraw.core.errors import SettingError
from quickdraw.data.augment import mirror
from quickdraw.data.input_files import InputBatch
from quickdraw.data.inputs import (
    IMAGE,
    Arrays,
    InputSpec,
    build_inputs,
    empty_drawing,
    recorded_inputs,
    to_tensors,
)
from quickdraw.data.raster import RasterSpec
from quickdraw.data.strokes import StrokeBatch


def model_inputs(model) -> dict[str, InputSpec]:
    """Every named input the model reads, with the exact spec it was trained with."""
    return recorded_inputs(model.hparams)


def raster_spec(model) -> RasterSpec:
    """The exact rasterisation the model's `image` input was trained with.

    Raises ValueError for a model that reads no image (a stroke-sequence network).
    """
    if not model.hparams.get("raster"):
        raise SettingError(
            f"this model reads no image (its inputs: {', '.join(model_inputs(model)) or 'none'})"
        )
    return RasterSpec(**model.hparams.raster)


# Test-time augmentation: the views of each drawing whose probabilities are averaged. `flip`
# adds the left-right mirror image (strokes mirrored, [`quickdraw.data.augment.mirror`][quickdraw.data.augment.mirror]), as the
# 2018 Kaggle winners did; it doubles the network's work.
TTA_VIEWS: dict[str, tuple[Callable[[StrokeBatch], StrokeBatch], ...]] = {
    "none": (lambda b: b,),
    "flip": (lambda b: b, mirror),
}


def check_tta(tta: str) -> str:
    if tta not in TTA_VIEWS:
        raise SettingError(f"tta must be one of {', '.join(TTA_VIEWS)}, got {tta!r}")
    return tta


Render = Callable[[StrokeBatch], np.ndarray | dict[str, Arrays]]


@torch.inference_mode()
def predict_proba(
    model,
    strokes: StrokeBatch,
    spec: RasterSpec | None = None,
    tta: str = "none",
    render: Render | None = None,
) -> np.ndarray:
    """Class probabilities (B, C) for a batch of drawings: the one place evaluate, predict and the
    demo turn strokes into probabilities, so test-time augmentation (`tta`) applies to all three.

    `render` turns strokes into model inputs: by default every input the checkpoint records
    ([`model_inputs`][quickdraw.inference.runner.model_inputs]: images, pen-move sequences, several for a mixed ensemble), built by
    [`quickdraw.data.inputs.build_inputs`][quickdraw.data.inputs.build_inputs]; `spec` draws the `image` input with another
    raster; the demo passes its untimed renderer for traced photos. A render may return images
    (the `image` input) or a dict of named inputs. Ensembles average their members inside
    `model.predict_proba`; TTA views (mirrored strokes) average on top, for every kind of input.
    """
    if render is None:
        specs = {IMAGE: spec} if spec is not None else model_inputs(model)
        render = lambda batch: build_inputs(specs, batch)  # noqa: E731
    views = TTA_VIEWS[check_tta(tta)]
    probs = [_proba(model, render(view(strokes))) for view in views]
    return probs[0] if len(probs) == 1 else np.mean(probs, axis=0)


def _proba(model, inputs: np.ndarray | dict[str, Arrays]) -> np.ndarray:
    if not isinstance(inputs, dict):
        inputs = {IMAGE: inputs}
    tensors = to_tensors(inputs)
    # A model reading images only gets the tensor, as every backend (ONNX too) takes it.
    x = tensors[IMAGE] if tensors.keys() == {IMAGE} else tensors
    return model.predict_proba(x).float().cpu().numpy()


@torch.inference_mode()
def blank_proba(model, spec: RasterSpec | None = None) -> np.ndarray:
    """(C,) probabilities for an empty canvas: the model's own guess when it sees no drawing.

    The documented fallback for rows whose drawing cannot be read: a checkpoint holds no class
    frequencies, and a blank input is the closest thing the model has to a class prior.
    """
    return predict_proba(model, empty_drawing(), spec)[0]


def batch_proba(
    model,
    batch: InputBatch,
    spec: RasterSpec | None,
    fallback: np.ndarray,
    tta: str = "none",
) -> np.ndarray:
    """(B, C) probabilities for every row of `batch`; unreadable rows get `fallback` (C,)."""
    probs = np.broadcast_to(fallback, (len(batch.key_ids), len(fallback))).copy()
    if batch.readable.any():
        probs[batch.readable] = predict_proba(model, batch.strokes, spec, tta)
    return probs
