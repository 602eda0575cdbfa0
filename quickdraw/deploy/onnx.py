"""A trained checkpoint as a self-describing ONNX model: graph, JSON sidecar, optional int8 variant.

The graph takes what the training loader gives the network and returns class probabilities
`(B, K)`, with a dynamic batch axis. An image model reads uint8 images `(B, C, H, W)` (input
`image`; the /255 scaling is inside); a stroke-sequence model (the LSTM, the Transformer) reads
the pen moves of [`quickdraw.data.sequence`][quickdraw.data.sequence], `points` `(B, T, 3)` float32
and `lengths` `(B,)` int64, T dynamic too. The softmax is inside, so every runtime (onnxruntime
in Python, onnxruntime-web in a page) needs nothing but the preprocessing the sidecar describes.
An averaging ensemble's forward already returns the log of its members' mean probabilities, so
the same softmax exports the averaged probabilities. A model reading several inputs (a mixed
ensemble) has no export.

The sidecar (`model.json` next to the graph) is the contract between training and every place
that runs the export: class names in output order, the input (`input.kind` `"raster"`: its
shape, dtype and encoding, and the raster spec with the numbers the rasteriser derives from it
(thickness, border: computed here, once, by [`RasterSpec`][quickdraw.data.raster.RasterSpec]);
`"sequence"`: its two tensors, `max_points`, the features and the frame they are scaled by, and
under `preview` the raster a page draws to show the drawing), the project version, and where the
training drawings came from (`data.origin`: `"quickdraw"`, `"generated"`, `"mixed"`, or null when
the checkpoint predates the record), which the page's credit line follows.
[`quickdraw.deploy.runtime`][quickdraw.deploy.runtime] and `quickdraw/deploy/page/` read it.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

import quickdraw
from quickdraw.core.errors import QuickDrawError
from quickdraw.core.files import atomic_path, write_json
from quickdraw.core.outputs import refuse_overwrite
from quickdraw.data import raster
from quickdraw.data.inputs import IMAGE, InputSpec
from quickdraw.data.origin import ORIGINS
from quickdraw.data.raster import RasterSpec
from quickdraw.data.sampling import fixed_rows
from quickdraw.data.sequence import FEATURES, FRAME, SequenceSpec
from quickdraw.data.store import Store
from quickdraw.deploy.graph import attention_for_onnx, for_onnx
from quickdraw.deploy.web import ORT_FILES, PAD_FILES, PAGE_FILES, build_page
from quickdraw.inference.runner import model_inputs, raster_spec
from quickdraw.models.loading import load_model

log = logging.getLogger(__name__)

SIDECAR = "model.json"
FP32, INT8 = "model.onnx", "model.int8.onnx"
CONV, PREP = "model.conv.onnx", "model.prep.onnx"  # steps of the int8 graph, deleted after
INPUT, OUTPUT = "image", "probs"
POINTS, LENGTHS = "points", "lengths"  # a sequence graph's inputs
OPSET = 18
FORMATS = ("onnx", "web")


class ExportError(QuickDrawError, ValueError):
    """An export that cannot be done as asked; the message names the setting and the fix."""


class Probabilities(torch.nn.Module):
    """uint8 images (B, C, H, W) -> class probabilities (B, K): the module's own predict path."""

    def __init__(self, module) -> None:
        super().__init__()
        self.module = module

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.module(images).softmax(dim=-1)


class SequenceProbabilities(torch.nn.Module):
    """Pen moves `points` (B, T, 3) float32 and `lengths` (B,) int64 -> class probabilities (B, K),
    given to the module as its input `name` (T >= 1: the runtimes give a blank canvas one zero
    point, as the networks themselves do)."""

    def __init__(self, module, name: str) -> None:
        super().__init__()
        self.module, self.name = module, name

    def forward(self, points: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.module({self.name: (points, lengths)}).softmax(dim=-1)


@dataclass(frozen=True)
class Quantization:
    """How `quantize=int8` quantises (`quantization.*` in quickdraw/conf/export.yaml)."""

    mode: str = "static"  # static: activations int8 too, calibrated; dynamic: weights only
    store: str | None = None  # static: a converted store with the model's classes
    split: str = "val"
    per_class: int = 8


@dataclass(frozen=True)
class WebPage:
    """What `format=web` puts in the page (`web.*` in quickdraw/conf/export.yaml)."""

    ort_dist: str | None = None  # the dist/ folder of npm's onnxruntime-web (`make web-deps`)
    model: str = "fp32"  # fp32 | int8: which export the page runs
    top_k: int = 5
    max_points: int = 5000  # the demo's limits.max_points (quickdraw.serving.guesser.Limits)
    max_strokes: int = 200  # the demo's limits.max_strokes
    # The demo's: announce a guess at this probability (0.9: chosen from the measured trade-off,
    # quickdraw/conf/demo.yaml).
    accept_threshold: float | None = 0.9


def export_checkpoint(
    ckpt_path: str | Path,
    out: str | Path,
    format: str = "onnx",
    quantize: str | None = None,
    quantization: Quantization = Quantization(),
    web: WebPage | None = None,
) -> Path:
    """What `python -m quickdraw.export` does: returns the folder written.

    `model.onnx` + `model.json`; `quantize="int8"` adds `model.int8.onnx`; `format="web"`
    adds the page ([`quickdraw.deploy.web.build_page`][quickdraw.deploy.web.build_page]). Raises ExportError for bad settings
    (a model that reads several inputs, static int8 of a stroke-sequence model: both before any
    file is written), CheckpointError for a file that is not a project checkpoint, WebBuildError without
    onnxruntime-web, OverwriteError (before any work) when a file it writes is one it reads.
    """

    if format not in FORMATS:
        raise ExportError(f"format={format!r}: expected one of {', '.join(FORMATS)}")
    if quantize not in (None, "int8"):
        raise ExportError(f"quantize={quantize!r}: expected int8 or null")
    web = web or WebPage()
    if format == "web" and not web.ort_dist:
        raise ExportError("format=web: set web.ort_dist=DIR, the dist folder of onnxruntime-web")
    if web.model not in ("fp32", "int8") or (web.model == "int8" and not quantize):
        raise ExportError(f"web.model={web.model!r}: expected fp32, or int8 with quantize=int8")
    out = Path(out)
    refuse_overwrite(
        {f"out ({f.relative_to(out)})": f for f in export_files(out, quantize, format)},
        {
            "ckpt_path": ckpt_path,
            "quantization.store": quantization.store if quantize else None,
            "web.ort_dist": web.ort_dist if format == "web" else None,
        },
        "Export into another folder (out=DIR).",
    )
    model = load_model(ckpt_path)
    _, spec = graph_input(model)  # a model with no graph is refused before anything is written
    if quantize and quantization.mode == "static" and isinstance(spec, SequenceSpec):
        raise ExportError(
            "quantization.mode=static calibrates int8 activations on images; this model reads "
            f"{spec.describe()}: set quantization.mode=dynamic (int8 weights, activation ranges "
            "computed per call)"
        )
    # An int8 page ships the int8 model alone: the fp32 graph would be downloaded for nothing.
    int8_page = format == "web" and web.model == "int8"
    log.info("exporting %s to %s", ckpt_path, out / (INT8 if int8_page else FP32))
    export_onnx(model, out, graph=not int8_page)
    if quantize:
        images = None
        if quantization.mode == "static" and quantization.store:
            q = quantization
            images = calibration_images(
                q.store, raster_spec(model), model.hparams.classes, q.per_class, q.split
            )
            log.info("calibrating int8 activations on %d drawings of %s", len(images), q.store)
        quantize_int8(model, out, quantization.mode, images)
        write_sidecar(model, out, int8=INT8)
    if format == "web":
        model_file = FP32 if web.model == "fp32" else INT8
        page = build_page(out, web.ort_dist, model_file, web.top_k, web.max_points,
                          web.max_strokes, web.accept_threshold)  # fmt: skip
        log.info("page: %s (serve it with `%s`)", page, serve_command(out))
    return out


def export_files(out: Path, quantize: str | None, format: str) -> list[Path]:
    """Every file an export writes into `out`, the int8 steps included: none may be an input."""

    names = [FP32, SIDECAR, *([INT8, CONV, PREP] if quantize else [])]  # an int8 page: no FP32
    if format == "web":
        names += [*PAGE_FILES, *PAD_FILES, *(f"ort/{name}" for name in ORT_FILES)]
    return [out / name for name in names]


def serve_command(folder: str | Path, port: int = 8000) -> str:
    """The command that serves an exported page on this machine only, as the demo binds 127.0.0.1
    (`http.server` alone listens on every network interface)."""
    return f"python -m http.server --bind 127.0.0.1 -d {folder} {port}"


def export_onnx(model, out_dir: str | Path, graph: bool = True) -> Path:
    """Write `out_dir/model.onnx` (one file, weights inside) and `out_dir/model.json`.

    `graph=False`: the sidecar alone, without `files.fp32` (an int8 page's folder, whose int8
    graph [`quantize_int8`][quickdraw.deploy.onnx.quantize_int8] writes next).
    `model`: a QuickDrawModule from [`quickdraw.models.loading.load_model`][quickdraw.models.loading.load_model] (single or ensemble).
    Returns the graph's path. Raises ExportError when `onnx` is missing, or for a model that
    reads several inputs (a mixed ensemble: [`graph_input`][quickdraw.deploy.onnx.graph_input]).
    """
    if data_origin(model) is None:  # checked before anything is written
        log.warning("%s: the checkpoint does not record where its training drawings came from (it "
                    "predates the record): the page says so instead of crediting them; credit "
                    "Quick, Draw! data yourself if the model learnt it", type(model.net).__name__)  # fmt: skip
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not graph:
        graph_input(model)
        write_json(out / SIDECAR, {**sidecar(model), "files": {}})
        return out / SIDECAR
    write_graph(model, out / FP32)
    write_sidecar(model, out)
    return out / FP32


def write_graph(model, path: Path, rewrite: bool = True) -> None:
    """`model`'s graph alone, as [`export_onnx`][quickdraw.deploy.onnx.export_onnx] writes it. `rewrite=False` keeps every
    convolution a `Conv` (int8 quantises that graph; the benchmark compares the two)."""
    name, spec = graph_input(model)
    _require("onnx")
    module = model.cpu().eval()
    if isinstance(spec, SequenceSpec):
        # Two drawings of different lengths: the padding mask is traced as it is used.
        example: tuple = (torch.rand(2, 5, FEATURES), torch.tensor([5, 3]))
        # Self-attention with shapes read from the input (quickdraw.deploy.graph); the fused
        # kernel it would take in eval mode has no ONNX form.
        wrapper = SequenceProbabilities(attention_for_onnx(module), name).eval()
        axes = {POINTS: {0: "batch", 1: "points"}, LENGTHS: {0: "batch"}}
        names = [POINTS, LENGTHS]
    else:
        example = (torch.zeros((2, spec.channels, spec.size, spec.size), dtype=torch.uint8),)
        # Convolutions on small maps as matrix products (quickdraw.deploy.graph: 22 -> 16 ms a pass
        # in onnxruntime-web for ResNet18 at 64 px); the checkpoint's own module is left as it is.
        wrapper = Probabilities(for_onnx(module, example[0]) if rewrite else module).eval()
        axes, names = {INPUT: {0: "batch"}}, [INPUT]
    # The TorchScript exporter (dynamo=False): ~1 s for ResNet18 on 2 CPU cores against ~30 s for
    # torch.export + onnxscript, with the same outputs (max difference 1e-8 either way).
    fastpath = torch.backends.mha.get_fastpath_enabled()
    with torch.no_grad(), warnings.catch_warnings():
        # Im2colConv's strided slices: the exporter says it cannot constant-fold them, and there
        # is nothing to fold (they slice activations).
        warnings.filterwarnings("ignore", message="Constant folding - Only steps=1")
        # The networks' guard for a blank canvas (T == 0) is traced as not taken: the runtimes
        # pad a blank canvas to one zero point instead.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        # The LSTM's: its lengths are a graph input (ONNX LSTM's sequence_lens), and the export
        # answers any batch size (tests/deploy/test_export.py runs batches of 1 and of 36).
        warnings.filterwarnings("ignore", message="Exporting a model to ONNX with a batch_size")
        torch.backends.mha.set_fastpath_enabled(False)
        try:
            # Written beside `path` and renamed: a full disk leaves no half graph under its name.
            with atomic_path(path) as tmp:
                _export_graph(wrapper, example, tmp, names, axes)
        finally:
            torch.backends.mha.set_fastpath_enabled(fastpath)


def _export_graph(
    wrapper: torch.nn.Module, example: tuple, path: Path, names: list[str], axes: dict
) -> None:
    torch.onnx.export(
        wrapper,
        example,
        str(path),  # one self-contained file: a static host serves it in one request
        input_names=names,
        output_names=[OUTPUT],
        dynamic_axes={**axes, OUTPUT: {0: "batch"}},
        opset_version=OPSET,
        dynamo=False,
    )


def sidecar(model) -> dict:
    """The JSON description of an exported model (see the module docstring)."""
    name, spec = graph_input(model)
    net = model.net
    members = getattr(net, "num_members", None)
    classes = list(model.hparams.classes)
    if isinstance(spec, SequenceSpec):
        described = {
            "input": {
                "kind": "sequence",
                "name": name,  # the model's input, which the graph's two tensors make
                "points": {
                    "name": POINTS,
                    "dtype": "float32",
                    "shape": ["batch", "points", FEATURES],
                },
                "lengths": {"name": LENGTHS, "dtype": "int64", "shape": ["batch"]},
                "max_points": spec.max_points,  # a drawing's first max_points points
                "features": ["dx", "dy", "pen_up"],  # quickdraw/data/sequence.py
                "frame": FRAME,  # dx, dy: moves in the simplified 0..255 frame, divided by this
            },
            # What a page shows of the drawing (the demo's gray view): not the network's input.
            "preview": raster_contract(RasterSpec()),
        }
    else:
        described = {
            "input": {
                "kind": "raster",
                "name": INPUT,
                "dtype": "uint8",
                "shape": ["batch", spec.channels, spec.size, spec.size],
                "layout": "NCHW, ink 255 on 0; the graph scales by 1/255",
            },
            "raster": raster_contract(spec),
        }
    return {
        "format": "quickdraw-onnx",
        "quickdraw_version": quickdraw.__version__,
        "arch": f"ensemble of {members} ({net.combine})" if members else type(net).__name__,
        "classes": classes,
        **described,
        "output": {"name": OUTPUT, "shape": ["batch", len(classes)]},
        "data": {"origin": data_origin(model)},
        "files": {"fp32": FP32},
    }


def data_origin(model) -> str | None:
    """The checkpoint's recorded training-data origin ([`quickdraw.data.origin`][quickdraw.data.origin]), None where
    it predates the record. Raises ExportError for any other value: the page's credit line
    follows it."""
    origin = model.hparams.get("data_origin") or None
    if origin is not None and origin not in ORIGINS:
        raise ExportError(
            f"the checkpoint's data_origin {origin!r} is none of {', '.join(ORIGINS)} (the store "
            "manifest's origin, recorded at training); set it to the data the model learnt "
            "(checkpoint['hyper_parameters']['data_origin']) and export again"
        )
    return origin


def raster_contract(spec: RasterSpec) -> dict:
    """The spec plus every number a re-implementation needs: one source of truth for the JS rasteriser."""
    if spec.channels > 1 and spec.time_source != "order":
        raise ExportError(
            f"raster.time_source={spec.time_source}: the exported page's rasteriser "
            "(quickdraw/deploy/page/raster.js) draws time by point order only; export a model trained "
            "with raster.time_source=order, or serve this one with backend=torch"
        )
    return {
        **asdict(spec),
        "channels": spec.channels,
        "thickness": spec.thickness,  # OpenCV thickness, px
        "border": spec.border,  # px kept free at each side
        "frame": 256,  # simplified drawings live in 0..255
        "shift": raster.SHIFT,  # fixed-point fraction bits of the canvas coordinates
        "ramp": [raster._FIRST, raster._LAST],  # temporal colours, early -> late
    }


def write_sidecar(model, out_dir: Path, **files: str) -> Path:
    path = Path(out_dir) / SIDECAR
    meta = json.loads(path.read_text()) if path.is_file() and files else sidecar(model)
    meta["files"].update(files)
    write_json(path, meta)
    return path


def quantize_int8(
    model, out_dir: str | Path, mode: str = "static", calibration: np.ndarray | None = None
) -> Path:
    """`out_dir/model.int8.onnx`: `model` quantised with onnxruntime's quantisation tools.

    From the graph with every convolution a `Conv` ([`write_graph`][quickdraw.deploy.onnx.write_graph] with `rewrite=False`):
    the int8 kernels gain nothing from the fp32 graph's MatMuls, and a MatMul's bias is quantised
    to 8 bits where a Conv's is 32 (top-1 agreement with PyTorch on 1 000 real drawings, 344-class
    model: 0.966 quantised from the MatMul graph, 0.975 from the Conv one; the default run: 0.995
    and 0.998).

    `static`: weights and activations int8 (QDQ), activation ranges calibrated on
    `calibration`, uint8 images (N, C, H, W) such as [`calibration_images`][quickdraw.deploy.onnx.calibration_images] returns.
    `dynamic`: int8 weights, activation ranges computed per call (no calibration data); the only
    mode for stroke-sequence graphs, whose input is no image to calibrate on (the frontier's
    trained Transformer: top-1 agreement with PyTorch 0.988 on 500 raw test drawings,
    docs/results/frontier.md).
    Raises ExportError for an unknown mode or static without images.
    """
    _require("onnxruntime")
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out = Path(out_dir)
    src, dst, prep = out / CONV, out / INT8, out / PREP
    if mode not in ("static", "dynamic"):
        raise ExportError(f"quantization.mode={mode!r}: expected static or dynamic")
    if mode == "static" and (calibration is None or not len(calibration)):
        raise ExportError(
            "static int8 quantisation needs calibration drawings: set quantization.store=DIR "
            "(a converted store, e.g. the training data) or quantization.mode=dynamic"
        )
    # The int8 graph is written beside dst and renamed: a full disk leaves no half file.
    try:
        with atomic_path(dst) as partial:
            write_graph(model, src, rewrite=False)
            quant_pre_process(str(src), str(prep), skip_symbolic_shape=True)
            if mode == "dynamic":
                quantize_dynamic(str(prep), str(partial), weight_type=QuantType.QInt8)
            else:

                class Reader(CalibrationDataReader):
                    def __init__(self) -> None:
                        self.batches = iter(
                            np.array_split(calibration, max(1, len(calibration) // 32))
                        )

                    def get_next(self):
                        batch = next(self.batches, None)
                        return None if batch is None else {INPUT: batch}

                import onnx

                quantize_static(
                    str(prep), str(partial), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                    nodes_to_exclude=_kept_float(onnx.load(str(prep))),
                    # Activation ranges: each batch's min/max, averaged over batches, rather than the
                    # extremes of all of them (one outlying drawing stretched a range for every other
                    # one). On the model and drawings of _kept_float, 5 457 calibration drawings:
                    # top-1 agreement 0.921 -> 0.982 (percentile calibration: 0.940); on the export's
                    # default 8 a class (1 062): 0.975. Memory stays bounded: ranges are merged every
                    # 16 batches (the histogram methods hold every batch's activations at once).
                    extra_options={"CalibMovingAverage": True, "CalibMaxIntermediateOutputs": 16},
                )  # fmt: skip
    finally:
        for path in (src, prep):
            path.unlink(missing_ok=True)
    return dst


def _kept_float(graph) -> list[str]:
    """Nodes static int8 leaves in float: the softmax (quantised probabilities would come in steps
    of 1/255), the classifiers (`Gemm`: 512 x K multiply-adds, under 1 % of a ResNet18's, whose
    logits decide between near-tied classes) and the first convolution (a 0/1 line image through
    one input channel: outputs wider than any later layer's, ~2 % of the multiply-adds). Measured
    on a 344-class ResNet18 (real sample, 32 px, test top-1 0.245; 1 000 raw test drawings; 5 457
    calibration drawings, min/max ranges): top-1 agreement with PyTorch 0.671 with the stem in float,
    0.921 with the classifier too. (A weaker model of this kind: 0.533 all int8, 0.699 stem in float.)
    """
    nodes = graph.graph.node
    convs = [n.name for n in nodes if n.op_type == "Conv"]
    return [n.name for n in nodes if n.op_type in ("Softmax", "Gemm")] + convs[:1]


def calibration_images(
    store_dir: str | Path, spec: RasterSpec, classes: list[str], per_class: int, split: str = "val"
) -> np.ndarray:
    """Up to `per_class` drawings of each class from a store's `split`, rasterised: uint8 (N, C, H, W).

    Raises ExportError when the store's classes differ from the model's (wrong store), or when
    `split` is not one of the store's or holds no drawings (the message names the split).
    """

    store = Store(store_dir)
    if list(store.classes) != list(classes):
        raise ExportError(
            f"quantization.store={store_dir} holds other classes than the model "
            f"({len(store.classes)} vs {len(classes)}); give the store the model was trained on"
        )
    sizes = ", ".join(f"{name} {len(rows)}" for name, rows in store.splits.items())
    if split not in store.splits:
        raise ExportError(f"quantization.split={split}: {store_dir} has the splits {sizes}")
    index = store[split]
    picked = fixed_rows(index, per_class, seed=0)
    if not len(picked):
        raise ExportError(
            f"quantization.split={split} of {store_dir} holds no drawings to calibrate int8 on "
            f"(drawings per split: {sizes}); choose a split that has some "
            "(quantization.split=train), another store, or quantization.mode=dynamic"
        )
    return spec(index.gather(picked).strokes)


def graph_input(model) -> tuple[str, InputSpec]:
    """The one input an exported graph reads, by name: the `image` raster or a pen-move sequence.

    Raises ExportError for a model that reads several inputs (a mixed ensemble), or another kind.
    """
    inputs = model_inputs(model)
    if len(inputs) == 1:
        name, spec = next(iter(inputs.items()))
        if name == IMAGE or isinstance(spec, SequenceSpec):
            return name, spec
    raise ExportError(
        "ONNX export supports models reading one input, a raster image or pen moves; this one "
        "reads "
        + ", ".join(f"{name} ({spec.describe()})" for name, spec in inputs.items())
        + ": the graph, the page and onnxruntime take one. Serve it with the checkpoint "
        "(backend=torch) instead, or export each member"
    )


def _require(*modules: str) -> None:
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ExportError(
            f"exporting needs {', '.join(missing)}: install the extra with `pip install -e '.[export]'`"
        )
