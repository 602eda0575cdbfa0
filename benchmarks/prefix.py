"""Prefix evaluation throughput: prefixes scored per second (`quickdraw.evaluate prefix=...`).

    python -m benchmarks.prefix [--size 64] [--drawings 400] [--by strokes] [--chunk 512] [--threads 1]

What `evaluate prefix=...` does per batch of drawings, timed: cut every growing prefix
(`quickdraw.data.prefixes.growing_prefixes`), rasterise and classify them in chunks through
`quickdraw.inference.runner.predict_proba`, keep the top 3 (`quickdraw.metrics.prefix.PrefixRecorder`).
ResNet18 (`quickdraw/conf/model/resnet18.yaml`, untrained: speed does not depend on the weights) for the
340 Quick, Draw! classes, on generated simplified doodles, pinned to one CPU core with one torch
thread by default. Target (issue 13): >= 2,000 prefixes/s on one core at 64 px.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import CLASSES, pin_one_core, save_checkpoint, usable_cpus
from quickdraw.data import synthetic
from quickdraw.data.prefixes import growing_prefixes
from quickdraw.data.strokes import StrokeBatch
from quickdraw.inference.runner import predict_proba, raster_spec
from quickdraw.metrics.prefix import PrefixRecorder
from quickdraw.models.loading import load_model

TARGET = 2000  # prefixes/s, one core, 64 px


def drawings(n: int) -> StrokeBatch:
    """n generated simplified doodles, the generated set's classes in turn."""
    rng = np.random.default_rng(0)
    words = synthetic.CLASSES
    out = [synthetic.simplified_drawing(words[i % len(words)], rng) for i in range(n)]
    return StrokeBatch.from_drawings([[[s[:, 0], s[:, 1]] for s in d] for d in out])


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--drawings", type=int, default=400)
    p.add_argument("--by", default="strokes", choices=["strokes", "ink"])
    p.add_argument(
        "--chunk", type=int, default=512, help="prefixes per forward pass (evaluate's batch_size)"
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    if args.device == "cpu" and args.threads == 1:
        pin_one_core(max(usable_cpus(), default=None))
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        model = load_model(
            str(save_checkpoint("resnet18", args.size, Path(tmp) / "m.ckpt")), args.device
        )
    batch = drawings(args.drawings)
    labels = np.arange(len(batch)) % len(CLASSES)
    proba = lambda s: predict_proba(model, s)  # noqa: E731
    PrefixRecorder(args.by, CLASSES, proba, args.chunk).add(
        batch.select(np.arange(32)), labels[:32]
    )
    recorder = PrefixRecorder(args.by, CLASSES, proba, args.chunk)
    t0, c0 = time.perf_counter(), time.process_time()
    recorder.add(batch, labels)
    scores = recorder.scores()
    scores.curve(), scores.metrics()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    n = len(scores.drawing)
    rate = n / wall
    c1 = time.process_time()
    prefixes, _, _ = growing_prefixes(batch, args.by)
    raster_spec(model)(prefixes)
    prep = time.process_time() - c1
    print(
        f"ResNet18 {args.size} px, {len(CLASSES)} classes, {args.threads} thread(s), {args.device}: "
        f"{n} prefixes by {args.by} of {len(batch)} drawings in {wall:.2f} s wall ({cpu:.2f} s CPU)"
    )
    print(
        f"{rate:,.0f} prefixes/s (CPU time: {n / cpu:,.0f}/s); target >= {TARGET:,}/s on one core: "
        + ("met" if rate >= TARGET else "NOT met")
    )
    print(
        f"of which cutting and rasterising the prefixes: {prep:.2f} s CPU ({n / max(prep, 1e-9):,.0f}/s); "
        f"the rest is the network"
    )


if __name__ == "__main__":
    main()
