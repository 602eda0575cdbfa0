"""Entry point: ``python -m quickdraw.export ckpt_path=... format=onnx|web [quantize=int8] [out=DIR]``.

``format=onnx`` writes ``model.onnx`` and its ``model.json`` sidecar (:mod:`quickdraw.onnx_export`),
``quantize=int8`` adds ``model.int8.onnx``, and ``format=web`` adds the static page that runs the
model in the browser (:mod:`quickdraw.web`). Serve that folder with any static host.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

import quickdraw  # noqa: F401  (registers the ${project_root:} resolver)
from quickdraw.data.store import StoreError
from quickdraw.inference import CheckpointError, load_model, raster_spec
from quickdraw.onnx_export import (
    FP32,
    INT8,
    ExportError,
    calibration_images,
    export_onnx,
    quantize_int8,
    write_sidecar,
)
from quickdraw.utils import output_dir
from quickdraw.web import WebBuildError, build_page

log = logging.getLogger("quickdraw.export")
FORMATS = ("onnx", "web")


def run(cfg: DictConfig) -> Path:
    """Export as ``cfg`` says; returns the folder written. Raises ExportError for bad settings."""
    if cfg.format not in FORMATS:
        raise ExportError(f"format={cfg.format!r}: expected one of {', '.join(FORMATS)}")
    if cfg.quantize not in (None, "int8"):
        raise ExportError(f"quantize={cfg.quantize!r}: expected int8 or null")
    if cfg.web.model not in ("fp32", "int8") or (cfg.web.model == "int8" and not cfg.quantize):
        raise ExportError(f"web.model={cfg.web.model!r}: expected fp32, or int8 with quantize=int8")
    out = Path(hydra.utils.to_absolute_path(cfg.out)) if cfg.out else output_dir(cfg)
    model = load_model(hydra.utils.to_absolute_path(cfg.ckpt_path))
    log.info("exporting %s to %s", cfg.ckpt_path, out / FP32)
    export_onnx(model, out)
    if cfg.quantize:
        q = cfg.quantization
        images = None
        if q.mode == "static" and q.store:
            store = hydra.utils.to_absolute_path(q.store)
            images = calibration_images(
                store, raster_spec(model), model.hparams.classes, q.per_class, q.split
            )
            log.info("calibrating int8 activations on %d drawings of %s", len(images), store)
        quantize_int8(out, q.mode, images)
        write_sidecar(model, out, int8=INT8)
    if cfg.format == "web":
        page = build_page(
            out, cfg.web.ort_dist, FP32 if cfg.web.model == "fp32" else INT8,
            cfg.web.top_k, cfg.web.max_points,
        )  # fmt: skip
        log.info("page: %s (serve it with `python -m http.server -d %s`)", page, out)
    return out


@hydra.main(version_base="1.3", config_path="../conf", config_name="export")
def main(cfg: DictConfig) -> None:
    try:
        out = run(cfg)
    except (CheckpointError, ExportError, StoreError, WebBuildError, ValueError) as e:
        log.error("%s", e)
        sys.exit(2)
    print(out)


if __name__ == "__main__":
    main()
