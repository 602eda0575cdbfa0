"""Training runs side by side as figures and tables: `python -m quickdraw.report RUN_OR_SWEEP [...]`.

A run folder gives its scores (`metrics.json`), resolved config (`tensorboard/hparams.yaml`),
learning curves and quota histograms (TensorBoard events) and checkpoints; the best checkpoint is
scored again on the split it was tested on for per-class accuracy and confusions.
`write_report` saves PNGs, CSVs and `report.md`; `notebooks/02_results.ipynb` shows the
same figures from the same functions. Figures are plain `matplotlib.figure.Figure` objects (no
pyplot), so they neither need a display nor pile up in a notebook.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from omegaconf import OmegaConf

from quickdraw.core.checkpoints import callback_state, read_checkpoint
from quickdraw.core.errors import MissingPathError, SettingError
from quickdraw.core.files import atomic_open, json_text, markdown_table, write_atomic, write_figure
from quickdraw.core.outputs import OverwriteError, is_within
from quickdraw.core.runs import RunDir, find_prefix_curves, find_runs
from quickdraw.data.raster import RasterSpec
from quickdraw.data.sampling import fixed_rows
from quickdraw.data.sources import ensure_store_of
from quickdraw.data.store import Store, StoreError
from quickdraw.inference.runner import predict_proba
from quickdraw.metrics.classification import Scores, score
from quickdraw.metrics.prefix import plot_prefix_curves
from quickdraw.models.loading import load_model

log = logging.getLogger(__name__)

# metrics.json key -> column name in the comparison table
SCORES = {
    "test/acc": "top-1",
    "test/acc3": "top-3",
    "test/map3": "MAP@3",
    "test/acc_worst10": "worst-10% class acc",
    "val/map3_best": "best val MAP@3",
}
# learning-curve panels: title -> TensorBoard scalars (train dashed, val solid)
CURVES = {
    "loss": ("train/loss_epoch", "val/loss"),
    "val top-1": ("val/acc",),
    "val MAP@3": ("val/map3",),
    "val accuracy of the worst 10% of classes": ("val/acc_worst10",),
}
QUANTILES = {"min": 0.0, "q25": 0.25, "median": 0.5, "q75": 0.75, "max": 1.0}


# -- reading run folders ----------------------------------------------------------------------
@dataclass
class Run:
    path: Path
    name: str  # unique label in figures and tables
    metrics: dict
    config: dict  # the resolved training config, plus the model's hyperparameters

    @property
    def dir(self) -> RunDir:
        return RunDir(self.path)

    @property
    def experiment(self) -> str:
        return str(self.metrics.get("experiment") or self.config.get("experiment_name", "?"))

    @property
    def sampling(self) -> str:
        return str(self.metrics.get("sampling") or self.config.get("data", {}).get("sampling", "?"))


def load_runs(paths: Sequence[str | Path]) -> list[Run]:
    """Every finished run under `paths`, named `experiment · sampling` (plus the folder when ambiguous)."""
    runs = []
    for d in find_runs(paths):
        hparams = d.hparams_file
        config = OmegaConf.to_container(OmegaConf.load(hparams)) if hparams.is_file() else {}
        runs.append(Run(d.path, "", d.metrics(), config))
    if not runs:
        raise MissingPathError(
            f"no finished training run (a metrics.json beside checkpoints/) under {', '.join(map(str, paths))}"
        )
    names = [f"{r.experiment} · {r.sampling}" for r in runs]
    for run, name in zip(runs, names, strict=True):
        run.name = name if names.count(name) == 1 else f"{name} ({run.path.name})"
    return runs


def _events(run: Run):
    """The run's TensorBoard events (every file of the folder, resumed runs included), or None."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    if not run.dir.tensorboard.is_dir():
        return None
    # 0 keeps every event; images (validation figures) are not needed here.
    guidance = {"scalars": 0, "histograms": 0, "images": 1, "tensors": 1}
    return EventAccumulator(str(run.dir.tensorboard), size_guidance=guidance).Reload()


def read_scalars(run: Run) -> pd.DataFrame:
    """Every TensorBoard scalar as rows `tag, step, epoch, value`.

    `epoch` counts finished epochs (fractional inside one), from the `epoch` scalar Lightning
    logs: steps per epoch vary under adaptive sampling, so steps alone do not line runs up.
    """
    acc = _events(run)
    tags = acc.Tags()["scalars"] if acc else []
    df = pd.DataFrame(
        [(t, e.step, e.value) for t in tags for e in acc.Scalars(t)],
        columns=["tag", "step", "value"],
    )
    ends = df[df.tag == "epoch"].groupby("value").step.max().sort_index()
    xp = np.maximum.accumulate(np.concatenate([[0.0], ends.to_numpy(float)]))
    fp = np.concatenate([[0.0], ends.index.to_numpy(float) + 1])
    df["epoch"] = np.interp(df.step.to_numpy(float), xp, fp)
    return df


def histogram_quantiles(
    limits: np.ndarray, counts: np.ndarray, lo: float, hi: float, qs: Sequence[float]
) -> np.ndarray:
    """Quantiles of a TensorBoard histogram (bucket i holds values up to `limits[i]`), linear in a bucket."""
    counts = np.asarray(counts, np.float64)
    left = np.clip(np.concatenate([[lo], limits[:-1]]), lo, hi)
    right = np.clip(np.asarray(limits), lo, hi)
    full = counts > 0
    cum = np.cumsum(counts[full]) / counts.sum()
    xs = np.stack([left[full], right[full]], 1).ravel()
    ys = np.stack([np.concatenate([[0], cum[:-1]]), cum], 1).ravel()
    return np.interp(qs, ys, xs)


def quota_history(run: Run) -> pd.DataFrame:
    """Spread of the per-class quotas set at the end of each epoch: `epoch, min, q25, median, q75, max, mean`.

    `epoch` counts finished epochs, as in `read_scalars`: the quotas of epoch e serve epoch
    e + 1. Exact from `quotas.csv` when the run has one, else approximated from the
    `sampler/quotas` histogram (TensorBoard buckets are about 10% wide).
    """
    per_class = class_quotas(run)
    if per_class is not None:
        stats = per_class.describe(percentiles=[0.25, 0.5, 0.75]).T  # over classes, per epoch
        stats = stats.rename(columns={"25%": "q25", "50%": "median", "75%": "q75"})
        return stats[[*QUANTILES, "mean"]].rename_axis("epoch").reset_index()
    acc = _events(run)
    rows = []
    has_histogram = acc is not None and "sampler/quotas" in acc.Tags()["histograms"]
    for event in acc.Histograms("sampler/quotas") if has_histogram else []:
        h = event.histogram_value
        limits, counts = np.asarray(h.bucket_limit), np.asarray(h.bucket)
        q = histogram_quantiles(limits, counts, h.min, h.max, list(QUANTILES.values()))
        rows.append([event.step + 1, *q, h.sum / max(h.num, 1)])
    return pd.DataFrame(rows, columns=["epoch", *QUANTILES, "mean"])


def class_quotas(run: Run) -> pd.DataFrame | None:
    """Classes x finished epochs table of quotas from the run's `quotas.csv`; None without one.

    `quotas.csv` holds `epoch,class,val_acc,quota`: one row per class after each validation,
    `epoch` being the 0-based epoch that was just validated (the histogram's step).
    """
    path = run.dir.quotas_file
    if not path.is_file():
        return None
    # A resumed run appends the epochs it repeats: the last entry wins.
    df = pd.read_csv(path).drop_duplicates(["epoch", "class"], keep="last")
    return df.assign(epoch=df.epoch + 1).pivot(index="class", columns="epoch", values="quota")


def final_quotas(run: Run) -> pd.DataFrame | None:
    """The adaptive sampler's last per-class quotas and validation accuracies, from last.ckpt."""

    path = run.dir.last_checkpoint
    if not path.is_file():
        return None
    state = callback_state(path, "AdaptiveSampler") or {}
    if not state.get("quotas"):
        return None
    classes = read_checkpoint(path)["hyper_parameters"]["classes"]
    return pd.DataFrame(
        {"quota": state["quotas"], "val_acc": state["class_acc"]},
        index=pd.Index(classes, name="class"),
    )


# -- per-class results of a checkpoint -----------------------------------------------------
@dataclass
class SplitScores(Scores):
    """A run's best checkpoint scored on one split of its store ([`Scores`][quickdraw.metrics.classification.Scores]),
    with where each drawing came from, so example drawings can be shown."""

    rows: np.ndarray | None = None  # (N,) row ids in the split
    store: Path | None = None
    split: str = "test"

    def drawings(self, true: str, predicted: str | None = None, k: int = 4):
        """Up to k drawings of class `true` (predicted as `predicted` when given), as `Rows`."""

        t = self.classes.index(true)
        hit = self.labels == t
        if predicted is not None:
            hit &= self.topk[:, 0] == self.classes.index(predicted)
        return Store(self.store)[self.split].gather(self.rows[hit][:k])


def score_split(
    run: Run, split: str = "test", device: str = "cpu", batch_size: int = 256
) -> SplitScores:
    """Score the run's best checkpoint on the rows it was evaluated on (the DataModule's fixed set).

    Cached in `<run>/report/predictions-<split>.npz` until the checkpoint changes; also writes
    `per_class-<split>.csv` there, in `quickdraw.evaluate`'s layout.
    """

    ckpt = run.dir.best_checkpoint()
    if ckpt is None:
        raise MissingPathError(f"{run.path}: no best checkpoint")
    data = dict(run.config.get("data") or {})
    if not data:
        raise MissingPathError(f"{run.path}: no tensorboard/hparams.yaml, so no data config")
    store = Store(
        ensure_store_of(data)
    )  # a cached store converted from data.source is rebuilt if gone
    out = run.dir.report_dir
    out.mkdir(exist_ok=True)
    cache = out / f"predictions-{split}.npz"
    stamp = f"{ckpt}|{ckpt.stat().st_mtime_ns}|{store.path}"
    if cache.is_file() and str((z := np.load(cache))["stamp"]) == stamp:
        metrics = json.loads(str(z["metrics"]))
        return SplitScores(
            store.classes, z["labels"], z["topk"], metrics, z["rows"], store.path, split
        )
    model = load_model(ckpt, device)
    if list(model.hparams.classes) != store.classes:
        raise StoreError(f"{store.path} has other classes than {ckpt}")
    index = store[split]
    rows = fixed_rows(index, data.get(f"{split}_per_class"), data.get("seed", 0))
    batches = (
        (got.strokes, got.labels)
        for start in range(0, len(rows), batch_size)
        for got in [index.gather(rows[start : start + batch_size])]
    )
    scored = score(lambda strokes: predict_proba(model, strokes), batches, store.classes, split)
    pred = SplitScores(
        scored.classes, scored.labels, scored.topk, scored.metrics, rows, store.path, split
    )
    with atomic_open(cache, "wb") as f:  # half a cache would stop every later report
        np.savez(
            f,
            labels=pred.labels,
            topk=pred.topk,
            rows=rows,
            stamp=stamp,
            metrics=json_text(pred.metrics, indent=None),
        )
    write_atomic(out / f"per_class-{split}.csv", pred.per_class_table().to_csv(index=False))
    return pred


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


# -- figures --------------------------------------------------------------------------------
def plot_learning_curves(runs: Sequence[Run]) -> Figure:
    fig = Figure(figsize=(11, 7), layout="constrained")
    axes = fig.subplots(2, 2, sharex=True)
    for i, run in enumerate(runs):
        df = read_scalars(run)
        for ax, (title, tags) in zip(axes.flat, CURVES.items(), strict=True):
            for tag in tags:
                s = df[df.tag == tag]
                style = "--" if tag.startswith("train/") else "-"
                label = run.name if tag == tags[-1] else None
                ax.plot(s.epoch, s.value, style, color=f"C{i}", marker=".", label=label)
            ax.set_title(title)
    axes[0, 0].text(
        0.98,
        0.95,
        "dashed: train, solid: val",
        transform=axes[0, 0].transAxes,
        ha="right",
        va="top",
        fontsize=8,
    )
    for ax in axes[1]:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    handles, labels = axes[0, 1].get_legend_handles_labels()
    # As many columns as fit the figure's width (~120 characters at this size): none cut off.
    ncols = max(1, min(len(labels), 120 // (max(map(len, labels), default=1) + 8)))
    fig.legend(handles, labels, loc="outside lower center", ncols=ncols, fontsize=9)
    return fig


def plot_scores(runs: Sequence[Run], preds: dict[str, SplitScores] | None = None) -> Figure:
    """Test top-1 / top-3 / MAP@3 per run, and (with predictions) each run's per-class accuracy."""
    preds = preds or {}
    fig = Figure(figsize=(12, 1.5 + 0.7 * len(runs)), layout="constrained")
    axes = fig.subplots(1, 2 if preds else 1, sharey=True, squeeze=False)[0]
    y = np.arange(len(runs))[::-1]
    height = 0.8 / 3
    for j, key in enumerate(("test/acc", "test/acc3", "test/map3")):
        values = [run.metrics.get(key, np.nan) for run in runs]
        bars = axes[0].barh(y + (1 - j) * height, values, height, label=SCORES[key])
        axes[0].bar_label(bars, fmt="%.3f", fontsize=7, padding=2)
    axes[0].set_yticks(y, [run.name for run in runs])
    axes[0].set_xlim(0, 1.12)
    axes[0].set_title("test scores")
    axes[0].legend(fontsize=8, loc="lower right")
    if preds:
        ax = axes[1]
        for yi, run in zip(y, runs, strict=True):
            if run.name not in preds:
                continue
            acc = preds[run.name].class_accuracy().dropna().to_numpy()
            ax.boxplot(
                [acc], positions=[yi], orientation="horizontal", widths=0.5, manage_ticks=False
            )
            jitter = np.random.default_rng(0).uniform(-0.15, 0.15, len(acc))
            ax.scatter(acc, yi + jitter, s=6, alpha=0.4, color="C0")
        ax.set_xlim(-0.03, 1.03)
        ax.set_title(f"per-class {next(iter(preds.values())).split} accuracy (one dot per class)")
    return fig


def plot_quotas(runs: Sequence[Run]) -> Figure | None:
    """Per adaptive run: the spread of per-class quotas over epochs, and which classes got what."""
    # Runs that trained no epoch (an ensemble of frozen, loaded members) never sampled anything.
    adaptive = [r for r in runs if r.sampling == "adaptive" and r.metrics.get("epochs", 1) > 0]
    if not adaptive:
        return None
    fig = Figure(figsize=(12, 3.8 * len(adaptive)), layout="constrained")
    for (ax, ax2), run in zip(fig.subplots(len(adaptive), 2, squeeze=False), adaptive, strict=True):
        h = quota_history(run)
        ax.fill_between(h.epoch, h["min"], h["max"], alpha=0.2, label="min-max")
        ax.fill_between(h.epoch, h.q25, h.q75, alpha=0.4, label="middle 50%")
        ax.plot(h.epoch, h["mean"], "k.-", label="mean")
        if n := run.config.get("data", {}).get("per_class"):
            ax.axhline(n, color="gray", ls=":", label="N (fixed sampling)")
        ax.set(
            title=f"{run.name}: quotas per class",
            ylabel="drawings per class",
            xlabel="epoch whose validation set them",
        )
        ax.legend(fontsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        per_class = class_quotas(run)
        if per_class is not None:
            _quota_heatmap(ax2, per_class)
        elif (final := final_quotas(run)) is not None:
            _final_quota_bars(ax2, final)
        else:
            ax2.set_axis_off()
    return fig


def _quota_heatmap(ax: Axes, per_class: pd.DataFrame) -> None:
    per_class = per_class.loc[per_class.mean(axis=1).sort_values().index]
    im = ax.imshow(per_class.to_numpy(), aspect="auto", cmap="viridis", interpolation="nearest")
    ax.figure.colorbar(im, ax=ax, label="quota")
    ax.set_xticks(range(per_class.shape[1]), per_class.columns)
    if len(per_class) <= 40:
        ax.set_yticks(range(len(per_class)), per_class.index, fontsize=7)
    ax.set(
        title="quota of each class (sorted by its mean)", xlabel="epoch whose validation set them"
    )


def _final_quota_bars(ax: Axes, final: pd.DataFrame) -> None:
    final = final.sort_values("quota")
    shown = pd.concat([final.head(8), final.tail(8)]) if len(final) > 16 else final
    bars = ax.barh(range(len(shown)), shown.quota, color="C0")
    ax.bar_label(bars, [f"val acc {a:.2f}" for a in shown.val_acc], fontsize=7, padding=2)
    ax.set_yticks(range(len(shown)), shown.index, fontsize=7)
    ax.set_xlim(0, shown.quota.max() * 1.3)
    what = "lowest and highest" if len(final) > 16 else "all"
    ax.set_title(f"last quotas, {what} classes (with the val accuracy that set them)", fontsize=10)


def show_drawing(ax: Axes, image: np.ndarray, title: str = "", color: str = "black") -> None:
    """One rasterised drawing (C, H, W) uint8, ink dark on white."""
    img = 255 - (image[0] if image.shape[0] == 1 else image[:3].transpose(1, 2, 0))
    ax.imshow(img, cmap="gray", vmin=0, vmax=255)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=8, color=color)


def plot_confused_pairs(pred: SplitScores, n_pairs: int = 6, k: int = 4, size: int = 96) -> Figure:
    """A row per confused pair: k drawings of the true class taken for the other, then 2 of the other class."""

    spec = RasterSpec(size=size, antialias=True)
    pairs = pred.confused_pairs(n_pairs)
    fig = Figure(figsize=(1.6 * (k + 2), 1.9 * max(1, len(pairs))), layout="constrained")
    axes = fig.subplots(max(1, len(pairs)), k + 2, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for row, pair in zip(axes, pairs.itertuples(), strict=False):
        wrong = spec(pred.drawings(pair.true, pair.predicted, k).strokes)
        other = spec(pred.drawings(pair.predicted, k=2).strokes)
        for ax, img in zip(row[:k], wrong, strict=False):
            show_drawing(ax, img, f"{pair.true}\n→ {pair.predicted}", "C3")
        for ax, img in zip(row[k:], other, strict=False):
            show_drawing(ax, img, f"a {pair.predicted}\n(true class)", "C2")
        row[0].set_ylabel(f"{pair.count}× ({pair.share:.0%})", fontsize=8)
        row[0].set_axis_on()
        row[0].set_frame_on(False)
    fig.suptitle(f"most-confused pairs ({pred.split} split): true → predicted")
    return fig


def prefix_curves(paths: Sequence[str | Path]) -> dict[str, pd.DataFrame]:
    """`prefix_curve.csv` of every run (latest validation, EarlyGuess callback) and evaluation
    (`prefix=...`) under `paths`, by folder name: `by,fraction,n,top1,top3,map3`."""
    return {name: pd.read_csv(path) for name, path in find_prefix_curves(paths).items()}


def plot_prefix_curves_of(paths: Sequence[str | Path]) -> Figure | None:
    """The prefix curves under `paths` side by side (top-1 against the share drawn); None without any."""
    curves = prefix_curves(paths)
    return plot_prefix_curves(curves) if curves else None


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
