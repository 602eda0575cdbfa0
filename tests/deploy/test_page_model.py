"""experiment=page_model: its network, for the 340 Kaggle classes at the data's raster, exports to an
int8 ONNX file of at most 6 MB (the page's download budget, issue 29) that agrees with PyTorch."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from quickdraw.data.raster import RasterSpec
from quickdraw.models import QuickDrawModule
from tests.helpers.configs import compose_config, compose_train

pytest.importorskip("onnxruntime", reason="the export extra is not installed")

from quickdraw.deploy.onnx import INT8, export_onnx, quantize_int8  # noqa: E402
from quickdraw.deploy.runtime import load_backend  # noqa: E402

PAGE_BUDGET_MB = 6.0


def test_the_page_model_exports_int8_within_the_download_budget(tmp_path):
    cfg = compose_train(tmp_path, "experiment=page_model", "data.raster.size=64")
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    model_cfg.pop("_target_")
    spec = RasterSpec(size=cfg.data.raster.size)
    torch.manual_seed(0)
    model = QuickDrawModule(
        **model_cfg, classes=[f"class {i}" for i in range(340)], raster=asdict(spec)
    ).eval()
    export_onnx(model, tmp_path / "page")
    images = (np.random.default_rng(0).random((32, 1, 64, 64)) > 0.92).astype(np.uint8) * 255
    quantize_int8(model, tmp_path / "page", "static", images)
    size_mb = (tmp_path / "page" / INT8).stat().st_size / 1e6
    assert size_mb <= PAGE_BUDGET_MB, f"{cfg.model.net.name}: int8 {size_mb:.1f} MB"
    fp32 = load_backend(tmp_path / "page" / "model.onnx", "onnx").probabilities(images)
    np.testing.assert_allclose(
        fp32, model.predict_proba(torch.from_numpy(images)).numpy(), atol=1e-4
    )


def test_the_documented_full_data_commands_compose():
    # docs/full-data.md: the page's model, alone and distilled, with the full-data recipe.
    page = ["experiment=kaggle_full", "model=timm", "model.net.name=mobilevit_xxs"]
    distil = "+model.objective={_target_:quickdraw.models.distill.Distill,teacher:E.ckpt,alpha:0.5,temperature:4.0}"
    for overrides in (page, [*page, distil]):
        cfg = compose_config("train", overrides)
        assert (
            cfg.model.net.name == compose_config("train", ["experiment=page_model"]).model.net.name
        )
        assert cfg.data.per_class == 20000 and cfg.model.optimizer.lr == 0.012
    assert cfg.model.objective.teacher == "E.ckpt"
