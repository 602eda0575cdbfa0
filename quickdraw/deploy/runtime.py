"""An exported model run by onnxruntime, standing in for the PyTorch module in `predict` and the demo.

`backend=onnx` swaps only the network: drawings still go through the same simplification and
the same input spec (read from the export's `model.json`: the
[`RasterSpec`][quickdraw.data.raster.RasterSpec] of an image model, the
[`SequenceSpec`][quickdraw.data.sequence.SequenceSpec] of a stroke-sequence one) built by the same
[`build_inputs`][quickdraw.data.inputs.build_inputs], so the outputs are those of the checkpoint
(`python -m benchmarks.export` measures how close). The class mimics the few attributes the
callers use (`hparams.classes`, `hparams.raster` or `hparams.inputs`, `device`, `predict_proba`),
so no caller branches on the backend beyond choosing the loader.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from quickdraw.core.checkpoints import CheckpointError
from quickdraw.core.errors import SettingError
from quickdraw.data.sequence import Sequences
from quickdraw.deploy.onnx import FP32, INT8, SIDECAR
from quickdraw.models.loading import load_model

BACKENDS = ("torch", "onnx")


class _Hparams(dict):
    """The checkpoint's `hparams` as far as inference reads them: attribute and key access."""

    __getattr__ = dict.__getitem__


class OnnxModel:
    """`model.onnx` (or `model.int8.onnx`) plus its sidecar, answering like a QuickDrawModule."""

    device = torch.device("cpu")

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        meta_path = self.path.with_name(SIDECAR)
        if not meta_path.is_file():
            raise CheckpointError(
                f"{self.path}: no {SIDECAR} next to it; export the model with "
                "`python -m quickdraw.export ckpt_path=CKPT format=onnx`"
            )
        self.meta = json.loads(meta_path.read_text())
        self.hparams = _Hparams(classes=self.meta["classes"], **_input_hparams(self.meta))
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(
                str(self.path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
            raise CheckpointError(f"{self.path} is not a loadable ONNX model: {e}") from e
        self.inputs = [i.name for i in self.session.get_inputs()]
        precision = "int8" if self.path.name == INT8 else "fp32"
        self.arch = f"{self.meta['arch']} (ONNX {precision}, onnxruntime)"

    def eval(self) -> OnnxModel:
        return self

    def probabilities(self, inputs: np.ndarray | Sequences) -> np.ndarray:
        """float32 probabilities (B, K) of the graph's input: uint8 images (B, C, H, W), or pen
        moves `(points (B, T, 3) float32, lengths (B,) int64)` for a sequence graph."""
        if len(self.inputs) == 1:
            images = np.ascontiguousarray(inputs, np.uint8)
            return self.session.run(None, {self.inputs[0]: images})[0]
        points, lengths = inputs
        if points.shape[1] == 0:  # a blank canvas: one zero point, as the networks read it
            points = np.zeros((len(points), 1, points.shape[2]), np.float32)
        feeds = (np.ascontiguousarray(points, np.float32), np.ascontiguousarray(lengths, np.int64))
        return self.session.run(None, dict(zip(self.inputs, feeds, strict=True)))[0]

    def predict_proba(self, inputs: torch.Tensor | dict[str, Any]) -> torch.Tensor:
        """What [`quickdraw.inference.runner`][quickdraw.inference.runner] passes a model: a tensor of images, or
        the named inputs (this graph's one input, under its name)."""
        if isinstance(inputs, dict):
            (inputs,) = inputs.values()
        if isinstance(inputs, tuple):
            arrays = Sequences(*(t.cpu().numpy() for t in inputs))
        else:
            arrays = inputs.cpu().numpy()
        return torch.from_numpy(self.probabilities(arrays))


def _input_hparams(meta: dict) -> dict[str, Any]:
    """The export's input as a checkpoint records it (`raster`, or `inputs.<name>`), so that
    [`quickdraw.inference.runner.model_inputs`][quickdraw.inference.runner.model_inputs] builds what the graph reads."""
    contract = meta["input"]
    if contract.get("kind", "raster") == "sequence":
        spec = {"kind": "sequence", "max_points": contract["max_points"]}
        return {"raster": None, "inputs": {contract["name"]: spec}}
    return {"raster": {k: meta["raster"][k] for k in ("size", "encoding", "line_width", "antialias", "margin")}}  # fmt: skip


def onnx_file(path: str | Path, int8: bool = False) -> Path:
    """An export folder or a .onnx file -> the graph to load (`int8`: the quantised variant)."""
    path = Path(path)
    if path.is_dir():
        path = path / (INT8 if int8 else FP32)
    if not path.is_file():
        raise CheckpointError(
            f"{path}: no such ONNX model; export one with `python -m quickdraw.export "
            f"ckpt_path=CKPT format=onnx{' quantize=int8' if int8 else ''} out=DIR`"
        )
    return path


def load_backend(
    path: str | Path,
    backend: str = "torch",
    device: str = "cpu",
    threads: int | None = None,
    int8: bool = False,
):
    """The model behind `path` for inference: a checkpoint (torch) or an export (onnx, CPU).

    Raises CheckpointError for files that are neither, ValueError for an unknown backend.
    """
    if backend == "torch":
        return load_model(path, map_location=device)
    if backend == "onnx":
        return OnnxModel(onnx_file(path, int8), threads)
    raise SettingError(f"backend={backend!r}: expected one of {', '.join(BACKENDS)}")
