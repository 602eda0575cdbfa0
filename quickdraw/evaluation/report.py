"""Training runs side by side as figures and tables: `python -m quickdraw.report RUN_OR_SWEEP [...]`.

A run folder gives its scores (`metrics.json`), resolved config (`tensorboard/hparams.yaml`),
learning curves and quota histograms (TensorBoard events) and checkpoints; the best checkpoint is
scored again on the split it was tested on for per-class accuracy and confusions
([`quickdraw.evaluation.results`][quickdraw.evaluation.results] reads them back,
[`quickdraw.evaluation.plots`][quickdraw.evaluation.plots] draws them).
`write_report` saves PNGs, CSVs and `report.md`; `notebooks/02_results.ipynb` shows the
same figures from the same functions.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from quickdraw.core.errors import SettingError
from quickdraw.core.files import markdown_table, write_atomic, write_figure
from quickdraw.core.outputs import OverwriteError, is_within
from quickdraw.evaluation.plots import (
    plot_confused_pairs,
    plot_learning_curves,
    plot_prefix_curves_of,
    plot_quotas,
    plot_scores,
)
from quickdraw.evaluation.results import SCORES, Run, SplitScores, load_runs, score_split

log = logging.getLogger(__name__)


def comparison_table(
    runs: Sequence[Run], preds: dict[str, SplitScores] | None = None
) -> pd.DataFrame:
    """One row per run: its final scores, per-class accuracy spread (with predictions) and run time."""
    rows = []
    for run in runs:
        m = run.metrics
        row = {"experiment": run.experiment, "sampling": run.sampling, "epochs": m.get("epochs")}
        row |= {label: m.get(key, np.nan) for key, label in SCORES.items()}
        if preds and run.name in preds:
            acc = preds[run.name].class_accuracy()
            row |= {"class acc median": acc.median(), "class acc min": acc.min()}
        row |= {"minutes": m.get("seconds", np.nan) / 60, "folder": run.path.name}
        rows.append(row)
    return pd.DataFrame(rows, index=pd.Index([r.name for r in runs], name="run"))


def frame_to_markdown(df: pd.DataFrame, digits: int = 4) -> str:
    """A DataFrame (index included) as a GitHub Markdown table ([`quickdraw.core.files.markdown_table`][quickdraw.core.files.markdown_table])."""
    header = [df.index.name or "", *map(str, df.columns)]
    rows = [
        [idx, *values] for idx, values in zip(df.index, df.itertuples(index=False), strict=True)
    ]
    return markdown_table(header, rows, digits)


# -- the report -------------------------------------------------------------------------------
def write_report(
    paths: Sequence[str | Path],
    out: str | Path | None = None,
    split: str = "test",
    device: str = "cpu",
    pairs: int = 6,
    evaluate: bool = True,
) -> Path:
    """Figures, CSVs and report.md for the runs under `paths`; returns report.md's path.

    Raises OverwriteError, before writing, when `out` is or lies inside one of the runs read
    (other than its `report/` folder): the report's files would mix with the run's.
    """
    if out is None and len(paths) != 1:
        raise SettingError("with several folders, say where the report goes (out=...)")
    out = Path(out) if out is not None else Path(paths[0]) / "report"
    runs = load_runs(paths)
    for run in runs:
        if is_within(out, run.path) and not is_within(out, run.dir.report_dir):
            raise OverwriteError(
                f"--out {out} lies inside the run folder {run.path}, which this report reads: "
                f"its files would mix with the run's. Nothing was written. Use --out "
                f"{run.dir.report_dir} or a folder outside the runs"
            )
    out.mkdir(parents=True, exist_ok=True)
    preds: dict[str, SplitScores] = {}
    for run in runs if evaluate else []:
        try:
            preds[run.name] = score_split(run, split, device)
        except (FileNotFoundError, RuntimeError, ValueError) as e:
            log.warning("%s: no per-class results (%s)", run.path, e)
    table = comparison_table(runs, preds)
    write_atomic(out / "comparison.csv", table.to_csv())
    figures = {
        "learning_curves": plot_learning_curves(runs),
        "scores": plot_scores(runs, preds),
        "quotas": plot_quotas(runs),
        "prefix_curves": plot_prefix_curves_of(paths),
    }
    confused = ""
    if preds:
        per_class = pd.DataFrame({name: p.class_accuracy() for name, p in preds.items()})
        write_atomic(out / "per_class_accuracy.csv", per_class.to_csv())
        best = max(
            (r for r in runs if r.name in preds), key=lambda r: r.metrics.get("test/map3", 0)
        )
        figures["confused_pairs"] = plot_confused_pairs(preds[best.name], pairs)
        pairs_table = preds[best.name].confused_pairs(2 * pairs).set_index("true")
        confused = (
            f"## Most-confused pairs of {best.name}\n\n`count` {split} drawings of the `true` class "
            f"were taken for `predicted`, a `share` of that class's drawings.\n\n"
            + frame_to_markdown(pairs_table, 3)
        )
    md = ["# Results\n", frame_to_markdown(table)]
    for name, fig in figures.items():
        if fig is not None:
            write_figure(fig, out / f"{name}.png")
            md.append(f"![{name.replace('_', ' ')}]({name}.png)\n")
    md.append(confused)
    write_atomic(out / "report.md", "\n".join(md))
    log.info("report: %s", out / "report.md")
    return out / "report.md"
