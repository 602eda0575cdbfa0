"""The acceptance-threshold figure of docs/results/prefix.md: when to say "I know — it's a cat!".

    python -m quickdraw.evaluate ckpt_path=CKPT input=test_simplified.csv labels=test_labels.csv prefix=strokes
    python -m benchmarks.figures.announcements outputs/evaluate/<time> [--out docs/figures/announcements.png]

Reads the evaluation's `announcements.csv` (quickdraw.metrics.prefix: per acceptance threshold,
the shares of drawings announced, announced wrongly and announced right, and the median share
drawn at the first right announcement) and draws the shares against the threshold, the median on
a second axis; `--mark T` draws the chosen default.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from benchmarks.figures.plotting import canvas, finish, parser, save

TITLE = "announcing a guess: share of test drawings against the acceptance threshold"


def plot(table: pd.DataFrame, mark: float | None = None, title: str = TITLE) -> Figure:
    fig, ax = canvas(6.5, 4.8)
    t = table["threshold"]
    for column, label in (("announced", "announced"), ("announced_wrongly", "announced wrongly (any wrong word said)"),
                          ("announced_right", "announced right (at some stroke)")):  # fmt: skip
        ax.plot(t, table[column], marker="o", ms=3, label=label)
    right = ax.twinx()
    right.plot(
        t,
        table["median_fraction_right"],
        color="grey",
        ls="--",
        marker=".",
        label="median share drawn at the first right announcement",
    )
    right.set_ylabel("median share of the drawing drawn", color="grey")
    right.set_ylim(0, 1.02)
    if mark is not None:
        ax.axvline(mark, color="black", lw=0.8, ls=":")
        ax.annotate(
            f"default {mark:g}", (mark, 0.97), xytext=(4, 0), textcoords="offset points", fontsize=8
        )
    ax.set_xlabel("accept_threshold (probability of the top guess)")
    ax.set_ylabel(f"share of the {int(table['drawings'].iloc[0])} test drawings")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    lines = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    ax.legend(lines, [h.get_label() for h in lines], fontsize=7, ncol=2, loc="upper center",
              bbox_to_anchor=(0.5, -0.14))  # fmt: skip
    return finish(fig, ax, title)


def main() -> None:
    p = parser(__doc__, "announcements.png")
    p.add_argument("evaluation", type=Path, help="a quickdraw.evaluate folder run with prefix=...")
    p.add_argument("--mark", type=float, help="the default threshold, drawn as a line")
    p.add_argument("--title", default=TITLE)
    args = p.parse_args()
    csv = args.evaluation / "announcements.csv"
    if not csv.is_file():
        sys.exit(
            f"{csv} not found: run quickdraw.evaluate with prefix=strokes into that folder first"
        )
    save(plot(pd.read_csv(csv), args.mark, args.title), args.out)


if __name__ == "__main__":
    main()
