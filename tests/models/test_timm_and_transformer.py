"""timm image models and the stroke Transformer: shapes, errors, padding, mixed ensembles, and each
through a short run, evaluation, reloading and ONNX export with parity."""

from __future__ import annotations

import csv
import json
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
import torch

from quickdraw.core.errors import SettingError
from quickdraw.models import QuickDrawModule
from quickdraw.models.components.timm_net import timm_model
from quickdraw.models.components.transformer import StrokeTransformer
from quickdraw.models.loading import load_model
from quickdraw.training.fit import train
from tests.helpers.drawings import sequence_edge_drawings
from tests.models.test_models import (  # noqa: F401  single_thread: an autouse fixture
    assert_every_trainable_param_has_grad,
    single_thread,
)

TIMM = "quickdraw.models.components.timm_net.timm_model"
ADAMW = {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 3e-3}


# -- timm -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name,in_channels", [("mobilenetv3_small_050", 1), ("vit_tiny_patch16_224", 3)]
)
def test_timm_net_shapes_and_gradients(name, in_channels):
    torch.manual_seed(0)
    net = timm_model(name, 5, in_channels, img_size=32)
    out = net(torch.rand(4, in_channels, 32, 32))
    assert out.shape == (4, 5) and torch.isfinite(out).all()
    assert net.forward_features(torch.rand(2, in_channels, 32, 32)).shape == (2, net.num_features)
    assert_every_trainable_param_has_grad(net, out)


def test_a_vit_is_built_for_the_raster_and_needs_its_size():
    net = timm_model("vit_tiny_patch16_224", 3, 1, img_size=32)
    assert net.model.patch_embed.num_patches == 4  # 32 px in 16 px patches: 2 x 2 tokens
    with pytest.raises(SettingError, match="img_size"):
        timm_model("vit_tiny_patch16_224", 3, 1)


def test_an_unknown_timm_name_says_which_names_are_close():
    with pytest.raises(SettingError, match="mobilenetv3_small_100") as info:
        timm_model("mobilenetv3_smal_100", 3)
    assert "model.net.name='mobilenetv3_smal_100'" in str(info.value)


def test_timm_pretrained_offline_gives_a_clear_error(monkeypatch, tmp_path):
    import timm.models._hub as hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    def offline(*args, **kwargs):
        raise LocalEntryNotFoundError("cannot reach the Hub and the file is not cached")

    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setattr(hub, "hf_hub_download", offline)
    with pytest.raises(RuntimeError) as info:
        timm_model("mobilenetv3_small_050", 3, pretrained=True)
    message = str(info.value)
    assert str(tmp_path / "hub") in message and "pretrained=false" in message
    assert "timm.create_model('mobilenetv3_small_050', pretrained=True)" in message


# -- the stroke Transformer -------------------------------------------------------------------------
def test_stroke_transformer_shapes_gradients_and_padding():
    torch.manual_seed(0)
    net = StrokeTransformer(5, d_model=32, heads=4, layers=2, ff=64)
    points, lengths = torch.randn(4, 12, 3), torch.tensor([12, 7, 1, 0])  # 0: a blank canvas
    out = net((points, lengths))
    assert out.shape == (4, 5) and torch.isfinite(out).all()
    assert_every_trainable_param_has_grad(net, out)
    net.eval()
    longer = torch.cat([points, torch.randn(4, 6, 3)], dim=1)  # junk beyond every length
    with torch.no_grad():
        torch.testing.assert_close(
            net((longer, lengths)), net((points, lengths)), atol=1e-5, rtol=1e-4
        )
    with pytest.raises(SettingError, match="heads"):
        StrokeTransformer(5, d_model=30, heads=4)


def test_timm_resnet_and_transformer_vote_in_one_mixed_ensemble():
    members = [
        {"_target_": TIMM, "name": "mobilenetv3_small_050", "input": "image"},
        {"_target_": "quickdraw.models.components.resnet.resnet18", "input": "temporal"},
        {"_target_": "quickdraw.models.components.transformer.StrokeTransformer",
         "input": "sequence", "d_model": 32, "layers": 1, "ff": 64},
    ]  # fmt: skip
    module = QuickDrawModule(
        net={"_target_": "quickdraw.models.components.ensemble.Ensemble", "member": None,
             "members": members},
        optimizer=ADAMW, classes=list("abc"), raster={"size": 32},
        inputs={"temporal": {"kind": "raster", "size": 32, "encoding": "temporal"},
                "sequence": {"kind": "sequence", "max_points": 16}},
    )  # fmt: skip
    assert module.input_names == ["image", "temporal", "sequence"]
    batch = {
        "image": torch.randint(0, 256, (2, 1, 32, 32), dtype=torch.uint8),
        "temporal": torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8),
        "sequence": (torch.randn(2, 16, 3), torch.tensor([16, 3])),
    }
    assert module.predict_proba(batch).shape == (2, 3)


# -- end to end: a short run, evaluation, reload, ONNX parity --------------------------------------
def raw_drawings(sample_dir: Path | None, demo_drawings, n: int = 200) -> list:
    """The sample's raw test drawings (the issue's parity set), else generated raw drawings."""
    if sample_dir is not None and (sample_dir / "test_raw.csv").is_file():
        with open(sample_dir / "test_raw.csv", newline="") as f:
            return [json.loads(r["drawing"]) for r in islice(csv.DictReader(f), n)]
    return [d for _, d in demo_drawings]


@pytest.fixture
def sample_or_none(request) -> Path | None:
    try:
        return request.getfixturevalue("sample_dir")
    except pytest.skip.Exception:
        return None


@pytest.mark.parametrize("experiment,extra", [
    ("timm_mobilenetv3", ["model.net.name=mobilenetv3_small_050"]),
    ("strokes_transformer", ["model.net.layers=1", "model.net.d_model=32", "model.net.ff=64"]),
])  # fmt: skip
def test_a_short_run_evaluates_reloads_and_exports(
    experiment, extra, tiny_config, tmp_path, sample_or_none, demo_drawings
):
    """The issue's parity: PyTorch and onnxruntime on the sample's raw test drawings, through the
    one inference path (strokes -> the model's input -> probabilities) that evaluate, predict and
    the demo share; for the Transformer also drawings of one point, one stroke, and past its
    max_points, and the blank canvas that evaluate's unreadable rows fall back to."""
    pytest.importorskip("onnxruntime", reason="the export extra is not installed")
    from quickdraw.data.strokes import StrokeBatch
    from quickdraw.deploy.onnx import export_onnx
    from quickdraw.deploy.runtime import load_backend
    from quickdraw.inference.runner import blank_proba, predict_proba
    from quickdraw.serving.guesser import EmptyDrawing, Guesser

    metrics = train(
        tiny_config(tmp_path, f"experiment={experiment}", "trainer.max_epochs=1", *extra)
    )
    assert {"test/acc", "test/map3"} <= set(metrics)
    model = load_model(metrics["best_ckpt"])
    export_onnx(model, tmp_path / "onnx")
    onnx = load_backend(tmp_path / "onnx" / "model.onnx", "onnx")
    drawings = raw_drawings(sample_or_none, demo_drawings)
    guesser, onnx_guesser = Guesser(model), Guesser(onnx)
    if experiment == "strokes_transformer":
        max_points = model.hparams.inputs["sequence"]["max_points"]
        edges = sequence_edge_drawings(max_points)
        assert [len(guesser.parse_strokes(d).points) for d in edges[:2]] == [1, 2]
        assert min(len(guesser.parse_strokes(d).points) for d in edges[2:]) > max_points
        drawings += edges
        for g in (guesser, onnx_guesser):  # a blank canvas: the image models' message, both ways
            with pytest.raises(EmptyDrawing):
                g.guess_strokes([])
        np.testing.assert_allclose(blank_proba(onnx), blank_proba(model), atol=1e-5)
        assert onnx_guesser.description.startswith("StrokeTransformer (ONNX fp32")
    batch = StrokeBatch.concat([guesser.parse_strokes(d) for d in drawings])
    ref, got = predict_proba(model, batch), predict_proba(onnx, batch)
    agree, diff = (got.argmax(1) == ref.argmax(1)).mean(), np.abs(got - ref).max()
    print(f"\n{experiment}: ONNX vs PyTorch on {len(drawings)} drawings: top-1 agreement "
          f"{agree:.4f}, max |dp| {diff:.1e}")  # fmt: skip
    assert diff <= 1e-4 and agree >= 0.999, (agree, diff)
    a, b = guesser.guess_strokes(drawings[0]), onnx_guesser.guess_strokes(drawings[0])
    assert [c for c, _ in a.top] == [c for c, _ in b.top] and (a.image == b.image).all()
