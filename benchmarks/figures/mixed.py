"""The mixed-ensemble figure of docs/results/mixed-ensembles.md: MAP@3 of each single model and ensemble, per seed, paired.

    python -m benchmarks.compare_models --mixed --seeds 42,1,2 ...      # first: the runs (mixed.json)
    python -m benchmarks.figures.mixed outputs/cmpM [--out docs/figures/mixed_ensembles.png]

One column per model (the three members, the homogeneous and the mixed averaging ensembles, the
learned head); a bar for the mean over seeds and a dot per seed, the dots of one seed joined by a
line, so a paired gain shows as every line rising.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from benchmarks.figures.plotting import LABELS, canvas, comparison, finish, parser, save

ORDER = {  # mixed.json name: axis label
    "gray": "ResNet18\ngray",
    "temporal": "ResNet18\ntemporal",
    "lstm": "stroke\nLSTM",
    "homogeneous_mean": "3 gray\nResNet18\naveraged",
    "mixed_mean": "gray +\ntemporal +\nLSTM\naveraged",
    "mixed_head": "gray +\ntemporal +\nLSTM\nlearned head",
}


def plot(results: dict, metric: str = "test/map3") -> Figure:
    seeds = sorted(results["gray"], key=int)
    names = [n for n in ORDER if n in results]
    fig, ax = canvas(7.5, 4)
    values = {s: [results[n][s][metric] for n in names] for s in seeds}
    means = [sum(values[s][i] for s in seeds) / len(seeds) for i in range(len(names))]
    ax.bar(range(len(names)), means, color="#9ecae1", label=f"mean over {len(seeds)} seeds")
    for s in seeds:
        ax.plot(
            range(len(names)), values[s], marker="o", ms=4, lw=0.8, alpha=0.8, label=f"seed {s}"
        )
    ax.set_xticks(range(len(names)), [ORDER[n] for n in names], fontsize=8)
    ax.set_ylabel(f"{LABELS.get(metric, metric)} on test_simplified.csv")
    ax.legend(fontsize=8)
    return finish(fig, ax, "mixed against homogeneous ensembles (real sample, paired by seed)", "y")


def main() -> None:
    p = parser(__doc__, "mixed_ensembles.png")
    p.add_argument("compare", type=Path, help="a compare_models --mixed output folder")
    args = p.parse_args()
    save(plot(comparison(args.compare, "mixed.json", "--mixed")), args.out)


if __name__ == "__main__":
    main()
