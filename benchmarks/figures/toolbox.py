"""The toolbox figure of docs/results/toolbox.md: each option's paired MAP@3 gain over the plain ResNet18 of its seed.

    python -m benchmarks.compare_models --variants base,tta,balance,... --seeds 42,1,2 ...   # first: the runs
    python -m benchmarks.figures.toolbox outputs/cmpT [--out docs/figures/toolbox.png]
    python -m benchmarks.figures.toolbox outputs/cmpS --title "..." --out docs/figures/raster_size.png

Each argument is a `compare_models --variants` output folder (its `variants.json`), optionally
followed by `:name,name` to keep only those variants (a folder of another budget contributes its
128 px runs, say; its variants are labelled with the folder's name). One row per variant: a dot per
seed (the gain over that seed's plain run), the mean as a bar and the seeds' standard deviation as
an error bar, so a gain that every seed shares stands clear of zero.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from benchmarks.figures.plotting import LABELS, canvas, comparison, finish, parser, save

TITLE = "the Kaggle toolbox on the real sample (dots: seeds; bar: mean ± sd)"


def gains(path: Path, keep: list[str] | None, metric: str) -> list[tuple[str, list[float]]]:
    """(variant, gain per seed) for the variants in `path/variants.json` but base."""
    results = comparison(path, "variants.json", "--variants ...")
    base = results["base"]
    out = []
    for name, per_seed in results.items():
        if name == "base" or (keep and name not in keep):
            continue
        seeds = [s for s in per_seed if s in base]
        out.append((name, [per_seed[s][metric] - base[s][metric] for s in seeds]))
    return out


def plot(rows: list[tuple[str, list[float]]], metric: str, title: str = TITLE) -> Figure:
    fig, ax = canvas(7.5, 0.45 * len(rows) + 1.2)
    for i, (_, g) in enumerate(rows):
        mean, sd = float(np.mean(g)), float(np.std(g, ddof=1)) if len(g) > 1 else 0.0
        ax.barh(i, mean, xerr=sd, color="#9ecae1" if mean >= 0 else "#fcae91", capsize=3)
        ax.plot(g, [i] * len(g), "o", color="#08519c", ms=4)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(range(len(rows)), [name for name, _ in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"{LABELS.get(metric, metric)} gain over the plain ResNet18 of the same seed")
    return finish(fig, ax, title, "x")


def main() -> None:
    p = parser(__doc__, "toolbox.png")
    p.add_argument("compare", nargs="+", help="FOLDER or FOLDER:variant,variant")
    p.add_argument("--metric", default="test/map3", choices=list(LABELS))
    p.add_argument("--title", default=TITLE)
    args = p.parse_args()
    rows = []
    for i, spec in enumerate(args.compare):
        folder, _, names = spec.partition(":")
        path = Path(folder)
        for name, g in gains(path, names.split(",") if names else None, args.metric):
            rows.append((name if i == 0 else f"{name} ({path.name})", g))
    if not rows:
        sys.exit("no variants besides base in those folders")
    save(plot(rows, args.metric, args.title), args.out)


if __name__ == "__main__":
    main()
