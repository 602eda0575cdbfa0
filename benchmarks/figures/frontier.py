"""The frontier figure of docs/results/frontier.md: accuracy against time per guess, marker area = download size.

    python -m benchmarks.frontier ...                                 # first: the runs (frontier.json)
    python -m benchmarks.figures.frontier outputs/frontier [--out docs/figures/frontier.png]
    python -m benchmarks.figures.frontier ACCURACY_RUN --timing UNTRAINED_RUN   # sizes and times from
        # another run (benchmarks.frontier --untrained at the page's size); a distilled student
        # takes its architecture's (the `distilled` row: mobilenetv3_small_100)

Left: MAP@3 on the run's test drawings (the sample's test file, or the generated store's test
split; mean over seeds, bars one standard deviation across seeds) against native CPU time per
guess (one thread, p50), every model. Right: the same MAP@3 against in-browser move -> updated guess p95
(Chromium, int8 page), for the models timed in the browser, with the 16.7 ms line of 60 guesses a
second. Marker area is proportional to the int8 ONNX file (the page's download); stroke models,
which the frontier does not export (no static int8: it calibrates on images), are hollow.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from benchmarks.figures.plotting import finish, parser, save

FRAME_MS = 1000 / 60  # one displayed frame at 60 Hz


TIMING_KEYS = ("int8_mb", "native_p50", "native_backend", "browser_p95")


def with_timing(results: dict, timing: dict) -> dict:
    """`results` (accuracy) with sizes and times of `timing`'s row of the same model (or of a
    distilled student's architecture); a model `timing` lacks (the ensemble) keeps its own."""
    from benchmarks.frontier import ARCHITECTURE

    merged = {}
    for name, r in results.items():
        t = timing.get(name) or timing.get(ARCHITECTURE.get(name, "")) or r
        base = {k: v for k, v in r.items() if k not in TIMING_KEYS}
        merged[name] = {**base, **{k: t[k] for k in TIMING_KEYS if k in t}}
    return merged


def plot(results: dict) -> Figure:
    fig = Figure(figsize=(10, 4.2))
    left, right = fig.subplots(1, 2, sharey=True)
    for name, r in results.items():
        scores = [m["test/map3"] for m in r.get("seeds", {}).values()] or (
            [r["ensemble"]["test/map3"]] if "ensemble" in r else []
        )
        if not scores:
            continue  # sizes and times only (--untrained): no accuracy to place
        map3 = float(np.mean(scores))
        spread = float(np.std(scores, ddof=1)) if len(scores) > 1 else 0.0
        area = 40 * r["int8_mb"] if "int8_mb" in r else 40
        style = (
            dict(s=area, alpha=0.6)
            if "int8_mb" in r
            else dict(s=area, facecolors="none", edgecolors="C3")
        )
        for ax, key in ((left, "native_p50"), (right, "browser_p95")):
            if key in r:
                ax.scatter(r[key], map3, **style)
                ax.errorbar(r[key], map3, yerr=spread, color="grey", lw=0.8, capsize=2)
                ax.annotate(
                    name, (r[key], map3), fontsize=7, xytext=(4, 3), textcoords="offset points"
                )
    left.set_xlabel("native CPU ms per guess, p50 (1 thread)")
    left.set_ylabel("MAP@3 on the run's test drawings (mean over seeds)")
    right.axvline(FRAME_MS, color="grey", lw=0.8, ls="--")
    right.set_xlabel("in-browser move -> guess p95, ms (int8 page; dashed: 60 Hz)")
    finish(fig, left, "every model", "both")
    finish(fig, right, "timed in Chromium", "both")
    fig.suptitle("accuracy / speed / size (marker area = int8 ONNX MB)", fontsize=10)
    fig.tight_layout()
    return fig


def main() -> None:
    p = parser(__doc__, "frontier.png")
    p.add_argument("frontier", type=Path, help="a benchmarks.frontier output folder")
    p.add_argument("--timing", type=Path, help="another one whose sizes and times to plot")
    args = p.parse_args()
    results = read(args.frontier)
    if args.timing:
        results = with_timing(results, read(args.timing))
    save(plot(results), args.out)


def read(folder: Path) -> dict:
    path = folder / "frontier.json"
    if not path.is_file():
        sys.exit(f"{path} not found: run python -m benchmarks.frontier --out {folder} first")
    return json.loads(path.read_text())


if __name__ == "__main__":
    main()
