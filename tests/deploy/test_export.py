"""ONNX export: the graph agrees with PyTorch, the sidecar describes it, and backend=onnx serves it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers.checkpoints import save_untrained
from tests.helpers.commands import run_export
from tests.helpers.configs import OPTIMIZER, RESNET
from tests.helpers.drawings import DEMO_CLASSES, sequence_edge_drawings

pytest.importorskip(
    "onnxruntime", reason="the export extra is not installed (pip install -e '.[export]')"
)

from quickdraw.core.checkpoints import CheckpointError  # noqa: E402
from quickdraw.data.raster import RasterSpec  # noqa: E402
from quickdraw.data.strokes import StrokeBatch  # noqa: E402
from quickdraw.deploy.onnx import export_onnx  # noqa: E402
from quickdraw.deploy.runtime import OnnxModel, load_backend  # noqa: E402
from quickdraw.evaluation.submission import write_submission  # noqa: E402
from quickdraw.models.loading import load_model
from quickdraw.serving.guesser import Guesser, simplified  # noqa: E402


def calibration_store(checkpoint: Path) -> Path:
    """The store the demo checkpoint was trained from (its DataModule converted it next to it)."""
    return next(checkpoint.parent.glob("cache/stores/*/manifest.json")).parent


@pytest.fixture(scope="module")
def exported(demo_checkpoint, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export")
    store = calibration_store(demo_checkpoint)
    return run_export(out, f"ckpt_path={demo_checkpoint}", "quantize=int8",
                      f"quantization.store={store}", "quantization.per_class=16")  # fmt: skip


def images_of(raw: list[list]) -> np.ndarray:
    spec = RasterSpec(size=32)
    return np.concatenate([spec(simplified(d, 5000)) for d in raw])


def test_onnx_agrees_with_pytorch_and_int8_nearly(exported, demo_checkpoint, demo_drawings):
    images = images_of([d for _, d in demo_drawings])
    torch_p = load_model(demo_checkpoint).predict_proba(torch.from_numpy(images)).numpy()
    fp32 = OnnxModel(exported / "model.onnx", threads=1).probabilities(images)
    int8 = OnnxModel(exported / "model.int8.onnx", threads=1).probabilities(images)
    diff = np.abs(fp32 - torch_p).max()
    print(f"\nfp32 max |p - p_torch| = {diff:.2e}; int8 top-1 agreement "
          f"{(int8.argmax(1) == torch_p.argmax(1)).mean():.3f}")  # fmt: skip
    assert fp32.shape == torch_p.shape == (len(images), 4)
    assert diff <= 1e-4
    assert (fp32.argmax(1) == torch_p.argmax(1)).all()
    assert (int8.argmax(1) == torch_p.argmax(1)).mean() >= 0.95
    assert np.allclose(int8.sum(1), 1, atol=1e-3)  # still probabilities


def test_the_sidecar_describes_the_model_and_the_batch_axis_is_dynamic(exported):
    meta = json.loads((exported / "model.json").read_text())
    assert meta["classes"] == ["circle", "square", "triangle", "zigzag"]
    assert meta["input"]["shape"] == ["batch", 1, 32, 32] and meta["input"]["dtype"] == "uint8"
    spec = RasterSpec(size=32)
    assert (meta["raster"]["thickness"], meta["raster"]["border"]) == (spec.thickness, spec.border)
    assert meta["files"] == {"fp32": "model.onnx", "int8": "model.int8.onnx"}
    assert meta["data"] == {"origin": "generated"}  # the demo model learnt generated doodles
    model = OnnxModel(exported / "model.onnx")
    for batch in (1, 7):
        assert model.probabilities(np.zeros((batch, 1, 32, 32), np.uint8)).shape == (batch, 4)


def test_an_averaging_ensemble_exports_its_averaged_probabilities(tmp_path, demo_drawings):
    ensemble = {"_target_": "quickdraw.models.components.ensemble.Ensemble",
                "member": RESNET, "num_members": 3, "combine": "mean"}  # fmt: skip
    model = load_model(save_untrained(tmp_path / "e.ckpt", ensemble))
    export_onnx(model, tmp_path / "e")
    images = images_of([d for _, d in demo_drawings[:8]])
    got = OnnxModel(tmp_path / "e" / "model.onnx").probabilities(images)
    with torch.no_grad():
        x = torch.from_numpy(images).float() / 255
        averaged = model.net.forward_members(x).softmax(-1).mean(0).numpy()
    assert np.abs(got - averaged).max() <= 1e-5
    assert "ensemble of 3" in json.loads((tmp_path / "e" / "model.json").read_text())["arch"]


def test_backend_onnx_serves_the_same_guesses_as_the_checkpoint(
    exported, demo_checkpoint, demo_drawings
):
    torch_pred = Guesser(load_backend(demo_checkpoint, "torch"))
    onnx_pred = Guesser(load_backend(exported, "onnx", threads=1))
    assert "ONNX fp32" in onnx_pred.description
    for _, d in demo_drawings:
        a, b = torch_pred.guess_strokes(d), onnx_pred.guess_strokes(d)
        assert [c for c, _ in a.top] == [c for c, _ in b.top]
        assert np.allclose([p for _, p in a.top], [p for _, p in b.top], atol=1e-4)
        assert (a.image == b.image).all()


def test_predict_with_backend_onnx_writes_the_same_submission(
    exported, demo_checkpoint, demo_drawings, tmp_path
):
    quoted = (json.dumps(d).replace('"', '""') for _, d in demo_drawings)
    csv_in = tmp_path / "in.csv"
    csv_in.write_text(
        "key_id,countrycode,drawing\n" + "\n".join(f'{i},US,"{d}"' for i, d in enumerate(quoted))
    )
    write_submission(load_model(demo_checkpoint), str(csv_in), tmp_path / "torch.csv", 16)
    write_submission(load_backend(exported, "onnx"), str(csv_in), tmp_path / "onnx.csv", 16)
    torch_rows = (tmp_path / "torch.csv").read_text().splitlines()
    assert len(torch_rows) == len(demo_drawings) + 1
    assert torch_rows == (tmp_path / "onnx.csv").read_text().splitlines()


def with_origin(checkpoint: Path, tmp_path: Path, origin: str | None) -> Path:
    """A copy of `checkpoint` recording `origin` as its training data's (None: not recorded)."""
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
    ckpt["hyper_parameters"]["data_origin"] = origin
    torch.save(ckpt, path := tmp_path / f"origin-{origin}.ckpt")
    return path


def test_an_export_of_a_checkpoint_without_its_datas_origin_says_so(
    demo_checkpoint, tmp_path, caplog
):
    out = run_export(tmp_path / "old", f"ckpt_path={with_origin(demo_checkpoint, tmp_path, None)}")
    assert json.loads((out / "model.json").read_text())["data"] == {"origin": None}
    assert "does not record where its training drawings came from" in caplog.text


def test_bad_exports_and_missing_pieces_are_named_with_the_fix(
    exported, demo_checkpoint, tmp_path, caplog
):
    lone = tmp_path / "lone.onnx"
    lone.write_bytes((exported / "model.onnx").read_bytes())
    with pytest.raises(CheckpointError, match=r"no model.json next to it.*quickdraw.export"):
        load_backend(lone, "onnx")
    with pytest.raises(CheckpointError, match=r"quantize=int8"):
        load_backend(tmp_path, "onnx", int8=True)
    with pytest.raises(ValueError, match="backend='tf'"):
        load_backend(demo_checkpoint, "tf")
    ckpt = f"ckpt_path={demo_checkpoint}"
    for overrides, message in [
        ([ckpt, "format=tflite"], "format='tflite'"),
        ([ckpt, "quantize=int8"], "quantization.store=DIR"),
        ([ckpt, "format=web", "web.model=int8"], "web.model='int8'"),
        ([ckpt, "format=web", f"web.ort_dist={tmp_path / 'nowhere'}"], "make web-deps"),
        ([f"ckpt_path={lone}"], str(lone)),
        (
            [f"ckpt_path={with_origin(demo_checkpoint, tmp_path, 'bogus')}"],
            "data_origin 'bogus' is none of",
        ),
    ]:
        caplog.clear()
        with pytest.raises(SystemExit) as stop:
            run_export(tmp_path / "x", *overrides)
        assert stop.value.code == 2 and message in caplog.text, (overrides, caplog.text)


RNN = {"_target_": "quickdraw.models.components.lstm.StrokeRNN", "input": "sequence",
       "conv_channels": [4], "kernel_sizes": [3], "hidden": 4, "layers": 2}  # fmt: skip
TRANSFORMER = {"_target_": "quickdraw.models.components.transformer.StrokeTransformer",
               "input": "sequence", "d_model": 16, "heads": 2, "layers": 2, "ff": 32}  # fmt: skip
SEQUENCE = {"sequence": {"kind": "sequence", "max_points": 16}}


def saved(tmp_path: Path, name: str, net: dict, raster: dict | None = None) -> Path:
    """An untrained checkpoint of `net` on the demo's classes reading SEQUENCE (and `raster`)."""
    from quickdraw.models.module import QuickDrawModule
    from quickdraw.testing.checkpoints import save_module

    torch.manual_seed(0)
    module = QuickDrawModule(net=net, optimizer=OPTIMIZER, classes=list(DEMO_CLASSES),
                             inputs=SEQUENCE, raster=raster)  # fmt: skip
    return save_module(module, tmp_path / f"{name}.ckpt")


@pytest.mark.parametrize("net", [RNN, TRANSFORMER], ids=["lstm", "transformer"])
def test_stroke_sequence_models_export_with_parity_at_any_batch_and_length(
    net, tmp_path, demo_drawings
):
    """Points (B, T, 3) and lengths (B,) in, probabilities out, B and T dynamic: batches of one
    and of many, drawings of one point, past max_points (16: truncated), and the blank canvas."""
    from quickdraw.data.inputs import empty_drawing
    from quickdraw.inference.runner import predict_proba

    model = load_model(saved(tmp_path, "seq", net))
    export_onnx(model, tmp_path / "out")
    meta = json.loads((tmp_path / "out" / "model.json").read_text())
    assert meta["input"] == {
        "kind": "sequence", "name": "sequence", "max_points": 16, "frame": 255.0,
        "features": ["dx", "dy", "pen_up"],
        "points": {"name": "points", "dtype": "float32", "shape": ["batch", "points", 3]},
        "lengths": {"name": "lengths", "dtype": "int64", "shape": ["batch"]},
    }  # fmt: skip
    assert "raster" not in meta and meta["preview"]["size"] == RasterSpec().size
    onnx = OnnxModel(tmp_path / "out" / "model.onnx", threads=1)
    raw = [d for _, d in demo_drawings] + sequence_edge_drawings(16)
    batch = StrokeBatch.concat([simplified(d, 5000) for d in raw])
    for strokes in (batch, *(StrokeBatch.concat([simplified(d, 5000)]) for d in raw[-4:]),
                    empty_drawing()):  # fmt: skip
        np.testing.assert_allclose(
            predict_proba(onnx, strokes), predict_proba(model, strokes), atol=1e-5
        )


def test_a_stroke_sequence_model_quantises_dynamically_not_statically(
    tmp_path, demo_drawings, caplog
):
    ckpt = f"ckpt_path={saved(tmp_path, 'seq', TRANSFORMER)}"
    with pytest.raises(SystemExit):
        run_export(tmp_path / "static", ckpt, "quantize=int8")
    assert "set quantization.mode=dynamic" in caplog.text
    assert not (tmp_path / "static" / "model.onnx").exists()  # refused before writing
    out = run_export(tmp_path / "dynamic", ckpt, "quantize=int8", "quantization.mode=dynamic")
    from quickdraw.data.sequence import SequenceSpec

    points = SequenceSpec(16)(StrokeBatch.concat([simplified(d, 5000) for _, d in demo_drawings]))
    probs = OnnxModel(out / "model.int8.onnx").probabilities(points)
    assert probs.shape == (len(demo_drawings), 4) and np.allclose(probs.sum(1), 1, atol=1e-3)


def test_models_reading_several_inputs_are_refused_by_name(tmp_path, caplog):
    """A mixed ensemble (an image member and a pen-move member): no graph takes both."""
    from quickdraw.deploy.onnx import ExportError

    small = {"_target_": "quickdraw.models.components.timm_net.timm_model",
             "name": "mobilenetv3_small_050", "input": "image"}  # fmt: skip
    mixed = {"_target_": "quickdraw.models.components.ensemble.Ensemble", "member": None,
             "members": [small, RNN]}  # fmt: skip
    path = saved(tmp_path, "mixed", mixed, raster={"size": 32})
    with pytest.raises(ExportError, match=r"image \(.*sequence \(pen moves.*backend=torch"):
        export_onnx(load_model(path), tmp_path / "out")
    assert not (tmp_path / "out" / "model.onnx").exists()
    with pytest.raises(SystemExit):
        run_export(
            tmp_path / "cli", f"ckpt_path={path}", "quantize=int8", "quantization.mode=dynamic"
        )
    assert "reads image" in caplog.text and not (tmp_path / "cli").exists()
