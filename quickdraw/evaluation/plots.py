"""The report's figures: learning curves, scores, quotas, confused pairs and prefix curves of
training runs, as plain `matplotlib.figure.Figure` objects (no pyplot), so that they neither
need a display nor pile up in a notebook."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from quickdraw.data.raster import RasterSpec
from quickdraw.evaluation.results import (
    SCORES,
    Run,
    SplitScores,
    class_quotas,
    final_quotas,
    prefix_curves,
    quota_history,
    read_scalars,
)
from quickdraw.metrics.prefix import plot_prefix_curves

# learning-curve panels: title -> TensorBoard scalars (train dashed, val solid)
CURVES = {
    "loss": ("train/loss_epoch", "val/loss"),
    "val top-1": ("val/acc",),
    "val MAP@3": ("val/map3",),
    "val accuracy of the worst 10% of classes": ("val/acc_worst10",),
}


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


def plot_prefix_curves_of(paths: Sequence[str | Path]) -> Figure | None:
    """The prefix curves under `paths` side by side (top-1 against the share drawn); None without any."""
    curves = prefix_curves(paths)
    return plot_prefix_curves(curves) if curves else None
