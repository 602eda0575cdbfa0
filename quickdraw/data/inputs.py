"""A model's inputs: named specs, each a callable StrokeBatch -> arrays, and the one function that builds them.

An *input spec* turns a batch of strokes into what a network reads: a
[`RasterSpec`][quickdraw.data.raster.RasterSpec] draws (B, C, H, W) uint8 images, a
[`SequenceSpec`][quickdraw.data.sequence.SequenceSpec] builds padded pen moves and their lengths. A model
reads one or more of them by name (`model.net.input`, default `image`; ensemble members each
their own), the DataModule builds exactly those once per batch, and inference builds the same from
the checkpoint: [`build_inputs`][quickdraw.data.inputs.build_inputs] is the one path from strokes to model inputs for training,
evaluation, prediction and the demo.

Names: `image` is the input that `data.raster` describes and that checkpoints record under
`hyper_parameters.raster` (as every checkpoint before named inputs did). Every other input is
configured under `data.inputs.<name>` and recorded under `hyper_parameters.inputs.<name>` as
plain data, `{"kind": "raster" | "sequence", **fields}` ([`spec_config`][quickdraw.data.inputs.spec_config]), so a checkpoint
names no code to run ([`quickdraw.models.loading`][quickdraw.models.loading]).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any, Protocol

import numpy as np
import torch

from quickdraw.core.errors import SettingError
from quickdraw.data.raster import RasterSpec
from quickdraw.data.sequence import SequenceSpec
from quickdraw.data.strokes import StrokeBatch

IMAGE = "image"  # the input data.raster describes (hyper_parameters.raster)
KINDS: dict[str, type] = {"raster": RasterSpec, "sequence": SequenceSpec}
Arrays = np.ndarray | tuple[np.ndarray, ...]
Tensors = torch.Tensor | tuple[torch.Tensor, ...]


class InputSpec(Protocol):
    """What every input spec offers: plain fields, `channels` and `__call__`."""

    @property
    def channels(self) -> int: ...

    def describe(self) -> str: ...

    def __call__(self, batch: StrokeBatch) -> Arrays: ...


def spec_config(spec: InputSpec) -> dict[str, Any]:
    """The plain-data form a checkpoint records: `{"kind": ..., **fields}`."""
    kind = next((k for k, cls in KINDS.items() if isinstance(spec, cls)), None)
    if kind is None:
        raise TypeError(f"{type(spec).__name__} is not an input spec (known: {sorted(KINDS)})")
    return {"kind": kind, **asdict(spec)}


def spec_from_config(config: Mapping[str, Any]) -> InputSpec:
    """Inverse of [`spec_config`][quickdraw.data.inputs.spec_config]; raises ValueError for an unknown kind."""
    fields = dict(config)
    kind = fields.pop("kind", None)
    if kind not in KINDS:
        raise SettingError(f"input kind {kind!r} is unknown; known: {sorted(KINDS)}")
    return KINDS[kind](**fields)


def recorded_inputs(hparams: Mapping[str, Any]) -> dict[str, InputSpec]:
    """Every input a checkpoint's hyperparameters record: `raster` as `image`, then `inputs`."""
    specs: dict[str, InputSpec] = {}
    if hparams.get("raster"):
        specs[IMAGE] = RasterSpec(**hparams["raster"])
    for name, config in (hparams.get("inputs") or {}).items():
        specs[name] = spec_from_config(config)
    return specs


def build_inputs(specs: Mapping[str, InputSpec], strokes: StrokeBatch) -> dict[str, Arrays]:
    """Each named input of `strokes`, built once: the one function from strokes to model inputs."""
    return {name: spec(strokes) for name, spec in specs.items()}


def to_tensors(inputs: Mapping[str, Arrays]) -> dict[str, Tensors]:
    """Zero-copy tensors of [`build_inputs`][quickdraw.data.inputs.build_inputs]'s arrays (tuples stay tuples)."""
    return {
        name: tuple(torch.from_numpy(np.asarray(a)) for a in value)
        if isinstance(value, tuple)
        else torch.from_numpy(value)
        for name, value in inputs.items()
    }


def empty_drawing() -> StrokeBatch:
    """A batch of one drawing with no strokes: what a blank canvas gives every spec."""
    return StrokeBatch(np.zeros((0, 2), np.float32), np.zeros(1, np.int64), np.zeros(2, np.int64))
