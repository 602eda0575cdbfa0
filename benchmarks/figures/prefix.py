"""The prefix-curve figure of docs/results/prefix.md: top-1 against the share of the drawing seen, mean over seeds.

    python -m benchmarks.compare_models --variants base,prefix50 --seeds 42,1,2 ...   # first: the runs
    python -m benchmarks.figures.prefix outputs/compare [--out docs/figures/prefix_curves.png]
    python -m benchmarks.figures.prefix outputs/cmpT --runs base,prefix0.25,prefix0.5,prefix0.75   # those runs only

Reads every `seed*/<run>/eval-*prefixstrokes*/prefix_curve.csv` that `compare_models
--variants` wrote (`quickdraw.evaluate prefix=strokes` of each run's best checkpoint), averages
each run's curve over the seeds and draws the mean with the seeds' range as a band. The y axis is
scaled to the data (the training-time figure keeps 0-1) so weak models' curves stay readable.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from benchmarks.figures.plotting import canvas, finish, parser, save

TITLE = "recognition of unfinished drawings (test_simplified.csv)"


def curves(compare: Path, runs: list[str] | None = None) -> dict[str, list[pd.DataFrame]]:
    """`<run>/<evaluation>` -> its prefix curves, one per seed. `runs`: only these run folders,
    scored without evaluation options (no TTA)."""
    found: dict[str, list[pd.DataFrame]] = defaultdict(list)
    for csv in sorted(compare.glob("seed*/*/eval-*prefixstrokes*/prefix_curve.csv")):
        if runs is not None and (
            csv.parent.parent.name not in runs or csv.parent.name != "eval-prefixstrokes"
        ):
            continue
        found[f"{csv.parent.parent.name} ({csv.parent.name.removeprefix('eval-')})"].append(
            pd.read_csv(csv)
        )
    return found


def plot(found: dict[str, list[pd.DataFrame]], metric: str = "top1", title: str = TITLE) -> Figure:
    fig, ax = canvas(6.5, 4)
    for name, frames in found.items():
        by_fraction = pd.concat(frames).groupby("fraction")[metric]
        mean, low, high = by_fraction.mean(), by_fraction.min(), by_fraction.max()
        (line,) = ax.plot(
            mean.index, mean.values, marker="o", ms=3, label=f"{name}, {len(frames)} seeds"
        )
        ax.fill_between(mean.index, low.values, high.values, color=line.get_color(), alpha=0.15)
    ax.set_xlabel("share of the drawing seen (strokes drawn / strokes, binned down to tenths)")
    ax.set_ylabel(f"{metric} (mean over seeds; band: min-max)")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, None)
    ax.legend(fontsize=8, loc="upper left")
    return finish(fig, ax, title)


def main() -> None:
    p = parser(__doc__, "prefix_curves.png")
    p.add_argument("compare", type=Path, help="a compare_models --variants output folder")
    p.add_argument(
        "--runs", help="comma-separated run folders to draw (default: every run and evaluation)"
    )
    p.add_argument("--title", default=TITLE)
    args = p.parse_args()
    found = curves(args.compare, args.runs.split(",") if args.runs else None)
    if not found:
        sys.exit(f"no seed*/<run>/eval-*prefixstrokes*/prefix_curve.csv under {args.compare}")
    save(plot(found, title=args.title), args.out)


if __name__ == "__main__":
    main()
