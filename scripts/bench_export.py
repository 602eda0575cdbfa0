"""Exported models: parity with PyTorch on real drawings, server latency, and latency in the browser.

    python scripts/bench_export.py [--ckpt CKPT] [--store STORE] [--drawings N] [--runs 300] [--moves 240]

1. Parity: the real sample's raw test drawings (``../shared/data/quickdraw-sample/test_raw.csv``)
   through the demo's preprocessing, then PyTorch, ONNX fp32 and ONNX int8 (onnxruntime): top-1
   agreement with PyTorch, the largest probability difference, and MAP@3 of each export scored
   against PyTorch's top-1 (1.0 = the same first guess every time).
2. Server side: ``Predictor.predict_strokes`` p50/p95 with each backend on one pinned core, one
   thread (the figure ``scripts/bench_demo.py`` reports for PyTorch), on generated raw drawings.
3. Browser: the exported page in headless Chromium (onnxruntime-web, WASM, one thread); a mouse
   stroke of ``--moves`` pointer moves, the time from each move to the guess that includes it.
Without ``--ckpt`` the model is an untrained ResNet18 for 340 classes at 64 px (latency does not
depend on the weights; parity is checked on its near-uniform probabilities, the hardest case for
top-1 agreement). ``--store``: calibrate int8 statically on that store (else dynamic int8).
Targets: fp32 top-1 agreement >= 99.9 %, max diff <= 1e-4, int8 top-1 >= 99 %; server p95
<= 5 ms (fp32); browser p95 <= 30 ms (fp32).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import tempfile
from itertools import islice
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_demo import browser_drawings, percentiles, save_checkpoint, time_server_side  # noqa: E402

from quickdraw.checkpoints import load_model  # noqa: E402
from quickdraw.inference import raster_spec  # noqa: E402
from quickdraw.onnx_backend import load_backend  # noqa: E402
from quickdraw.onnx_export import calibration_images, export_onnx, quantize_int8, write_sidecar  # noqa: E402
from quickdraw.scoring import average_precision_at_k  # noqa: E402
from quickdraw.serving import Predictor  # noqa: E402
from quickdraw.web import build_page  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "data" / "quickdraw-sample" / "test_raw.csv"
ORT_DIST = ROOT / "build" / "web-deps" / "node_modules" / "onnxruntime-web" / "dist"


def map3(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(average_precision_at_k(torch.from_numpy(probs), torch.from_numpy(labels)).mean())


def parity(ckpt: Path, out: Path, n: int) -> None:
    with open(SAMPLE, newline="") as f:
        drawings = [json.loads(r["drawing"]) for r in islice(csv.DictReader(f), n)]
    torch_pred = Predictor(load_model(ckpt))
    images = np.concatenate([torch_pred.spec(torch_pred.parse_strokes(d)) for d in drawings])
    ref = torch_pred.probabilities(images)
    labels = ref.argmax(1)
    print(f"parity on {len(drawings)} real raw drawings ({SAMPLE.name}), against PyTorch:")
    for name in ("model.onnx", "model.int8.onnx"):
        got = load_backend(out / name, "onnx").probabilities(images)
        print(f"  {name:16s} top-1 agreement {(got.argmax(1) == labels).mean():.4f}, "
              f"max |p - p_torch| {np.abs(got - ref).max():.2e}, MAP@3 vs PyTorch top-1 {map3(got, labels):.4f}")  # fmt: skip


def server(ckpt: Path, out: Path, runs: int) -> None:
    os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
    torch.set_num_threads(1)
    (out / "raw").mkdir(exist_ok=True)
    drawings = browser_drawings(200, out / "raw")
    print(f"server side, strokes -> probabilities, one core, one thread, {runs} runs:")
    for label, path, backend in (("PyTorch", ckpt, "torch"), ("ONNX fp32", out / "model.onnx", "onnx"),
                                 ("ONNX int8", out / "model.int8.onnx", "onnx")):  # fmt: skip
        predictor = Predictor(load_backend(path, backend, threads=1))
        ms = time_server_side(predictor, drawings, runs)
        p50, p95 = percentiles(ms["wall"])
        net50, _ = percentiles(ms["network"])
        print(f"  {label:10s} p50 {p50:5.1f} ms, p95 {p95:5.1f} ms (network p50 {net50:.1f} ms)")


def browser(out: Path, moves: int) -> None:
    from quickdraw.web.browser import draw, open_page

    spiral = [(0.5 + 0.4 * (i / moves) * math.cos(i / 8), 0.5 + 0.4 * (i / moves) * math.sin(i / 8))
              for i in range(moves + 1)]  # fmt: skip
    print(
        f"browser (headless Chromium, onnxruntime-web WASM, 1 thread), one stroke of {moves} moves:"
    )
    for name in ("model.onnx", "model.int8.onnx"):
        build_page(out, ORT_DIST, name)
        with open_page(out) as s:
            draw(s.page, spiral[:20], steps=1)  # warm-up stroke
            s.page.wait_for_function(
                "!window.quickdraw.state.busy && !window.quickdraw.state.waiting.length"
            )
            s.page.evaluate(
                "window.quickdraw.state.latencies = []; window.quickdraw.state.guesses = 0"
            )
            draw(s.page, spiral, steps=1)
            s.page.wait_for_function(
                "!window.quickdraw.state.busy && !window.quickdraw.state.waiting.length"
            )
            lat = s.page.evaluate("window.quickdraw.state.latencies")
            guesses = s.page.evaluate("window.quickdraw.state.guesses")
            p50, p95 = percentiles(lat)
            print(f"  {name:16s} move -> updated guess p50 {p50:5.1f} ms, p95 {p95:5.1f} ms "
                  f"({len(lat)} moves, {guesses} guesses, requests after load: {len(s.requests)})")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--ckpt", type=Path)
    ap.add_argument("--store", type=Path, help="calibrate int8 statically on this store")
    ap.add_argument("--drawings", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--moves", type=int, default=240)
    ap.add_argument("--skip", default="", help="comma list of parity,server,browser to skip")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "export"
        ckpt = args.ckpt or save_checkpoint("resnet18", 64, Path(tmp) / "resnet18.ckpt")
        model = load_model(ckpt)
        export_onnx(model, out)
        images = None
        if args.store:
            images = calibration_images(args.store, raster_spec(model), model.hparams.classes, 8)
        quantize_int8(out, "static" if args.store else "dynamic", images)
        write_sidecar(model, out, int8="model.int8.onnx")
        print(
            f"model: {ckpt}; int8: {'static, ' + str(len(images)) + ' drawings' if args.store else 'dynamic'}"
        )
        skip = set(args.skip.split(","))
        if "parity" not in skip and SAMPLE.is_file():
            parity(ckpt, out, args.drawings)
        if "browser" not in skip:
            browser(out, args.moves)
        if "server" not in skip:
            server(ckpt, out, args.runs)


if __name__ == "__main__":
    main()
