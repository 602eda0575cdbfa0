"""Scoring unfinished drawings: the prefix curve, the `early/*` metrics and their per-class table.

A model is scored on growing prefixes of each drawing ([`quickdraw.data.prefixes.growing_prefixes`][quickdraw.data.prefixes.growing_prefixes]),
batched through [`quickdraw.inference.runner.predict_proba`][quickdraw.inference.runner.predict_proba] like any drawing. Definitions, per drawing
with prefixes 1..K at fractions f_1 < ... < f_K = 1 (strokes drawn / strokes, or share of ink or
time), "right" meaning the true class is top-1:

* `early/auc_top1`: the area under the drawing's top-1 step curve over [0, 1], each prefix
  counting for the share of the drawing it adds (f_k - f_{k-1}, f_0 = 0), averaged over
  drawings. A model right from the first stroke scores 1; one right only when finished scores
  1/S by strokes, 0.1 by ink or time.
* `early/correct_before_end`: share of drawings whose top-1 became right before the last
  prefix and stayed right to the end (right at prefixes j..K with j < K).
* `early/median_fraction_first_stable`: the median f_j of those drawings (NaN when none).
* `early/accepted_auc_top1`, `early/accepted_correct_before_end`,
  `early/accepted_median_fraction_first_stable`: the same under the game's acceptance rule,
  "right" meaning top-1 is the true class with probability >= `early/accept_threshold`.

`announcements.csv` ([`PrefixScores.announcements`][quickdraw.metrics.prefix.PrefixScores.announcements]): the game's announcement rule
(the demo and the page say "I know — it's a cat!" after a stroke whose top guess has probability
>= the threshold, [`quickdraw.serving.guessing`][quickdraw.serving.guessing]) at each threshold in `THRESHOLDS`, per drawing:
`announced` (some prefix is accepted), `announced_wrongly` (some accepted prefix names a wrong
class: the player hears a wrong word), `announced_right` (some accepted prefix is right) and
`median_fraction_right` (the median share drawn at the first right announcement, over the drawings
that get one). A player notices a wrong announcement more than a late one: the curve is what the
default `accept_threshold` is chosen from (docs/results/prefix.md).

`prefix_curve.csv` ([`PrefixScores.curve`][quickdraw.metrics.prefix.PrefixScores.curve]) averages prefixes per fraction: ink and time at
the fractions evaluated, strokes at k/S binned down to tenths, so the 1.0 bin holds exactly the
finished drawings and equals the plain evaluation's top-1.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from quickdraw.data.prefixes import growing_prefixes
from quickdraw.data.strokes import StrokeBatch

CURVE_COLUMNS = ["by", "fraction", "n", "top1", "top3", "map3"]
# The acceptance thresholds announcements.csv reports: the curve a default is chosen from.
THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.99)
ANNOUNCEMENT_COLUMNS = [
    "threshold", "drawings", "announced", "announced_wrongly", "announced_right", "median_fraction_right",
]  # fmt: skip


@dataclass
class PrefixScores:
    """Predictions on M prefixes of N drawings, prefixes of a drawing consecutive and growing."""

    by: str
    classes: list[str]
    drawing: np.ndarray  # (M,) int64 drawing id, 0..N-1 in scoring order
    fraction: np.ndarray  # (M,) float64 share of the drawing in the prefix, 0-1
    labels: np.ndarray  # (M,) int64 true class of the drawing
    topk: np.ndarray  # (M, k) int64 predicted class ids, best first
    top_proba: np.ndarray  # (M,) float32 probability of the top-1 class

    @property
    def drawings(self) -> int:
        return len(self._ends)

    @property
    def right(self) -> np.ndarray:
        return self.topk[:, 0] == self.labels

    def curve(self) -> pd.DataFrame:
        """`by,fraction,n,top1,top3,map3`: mean scores of the prefixes at each fraction."""
        fraction = self.fraction
        if self.by == "strokes":  # k/S binned down to tenths; only finished drawings reach 1.0
            fraction = np.floor(self.fraction * 10 + 1e-9) / 10
        hits = self.topk == self.labels[:, None]
        # AP@3 from the top 3: 1/rank of the true class, as quickdraw.metrics.classification.average_precision_at_k
        ap = (hits / np.arange(1, hits.shape[1] + 1)).sum(axis=1)
        df = pd.DataFrame(
            {"fraction": np.round(fraction, 4), "top1": hits[:, 0], "top3": hits.any(1), "map3": ap}
        )
        out = df.groupby("fraction").agg(
            n=("top1", "size"), top1=("top1", "mean"), top3=("top3", "mean"), map3=("map3", "mean")
        )
        return out.reset_index().assign(by=self.by)[CURVE_COLUMNS]

    def per_drawing(self, accept_threshold: float) -> pd.DataFrame:
        """One row per drawing: `label, auc_top1, first_stable, accepted_auc_top1, accepted_first_stable`.

        `first_stable`: the fraction where the stable right guess began; NaN when it began only
        at the end (or never).
        """
        out = {"label": self.labels[self._ends]}
        rules = {"": self.right, "accepted_": self.right & (self.top_proba >= accept_threshold)}
        for name, right in rules.items():
            out[f"{name}auc_top1"], out[f"{name}first_stable"] = self._stability(right)
        return pd.DataFrame(out)

    def metrics(self, accept_threshold: float = 0.9) -> dict[str, float]:
        """The `early/*` metrics (module docstring)."""
        d = self.per_drawing(accept_threshold)
        out = {"early/accept_threshold": float(accept_threshold)}
        for name in ("", "accepted_"):
            stable = d[f"{name}first_stable"].dropna()
            out[f"early/{name}auc_top1"] = float(d[f"{name}auc_top1"].mean())
            out[f"early/{name}correct_before_end"] = len(stable) / max(len(d), 1)
            out[f"early/{name}median_fraction_first_stable"] = (
                float(stable.median()) if len(stable) else float("nan")
            )
        return out

    def announcements(self, thresholds: Iterable[float] = THRESHOLDS) -> pd.DataFrame:
        """`ANNOUNCEMENT_COLUMNS`, one row per threshold: shares of the drawings announced,
        announced wrongly and announced right, and the median share drawn at the first right
        announcement (NaN when no drawing gets one); see the module docstring."""
        n, rows = len(self._ends), []
        position = np.arange(len(self.drawing))
        for t in thresholds:
            said = self.top_proba >= t
            wrong = np.bincount(self.drawing, said & ~self.right, minlength=n) > 0
            hit = said & self.right
            first = np.full(n, len(position))
            np.minimum.at(first, self.drawing[hit], position[hit])
            got = first < len(position)
            rows.append({
                "threshold": float(t), "drawings": n,
                "announced": float((np.bincount(self.drawing, said, minlength=n) > 0).mean()) if n else np.nan,
                "announced_wrongly": float(wrong.mean()) if n else np.nan,
                "announced_right": float(got.mean()) if n else np.nan,
                "median_fraction_right": float(np.median(self.fraction[first[got]])) if got.any() else np.nan,
            })  # fmt: skip
        return pd.DataFrame(rows, columns=ANNOUNCEMENT_COLUMNS)

    def per_class_table(self, accept_threshold: float = 0.9) -> pd.DataFrame:
        """`class, early_auc_top1, early_correct_before_end, early_median_fraction_first_stable`
        (NaN for classes without drawings): which classes are guessed earliest and latest."""
        d = self.per_drawing(accept_threshold).assign(before=lambda x: x.first_stable.notna())
        g = d.groupby("label").agg(
            early_auc_top1=("auc_top1", "mean"),
            early_correct_before_end=("before", "mean"),
            early_median_fraction_first_stable=("first_stable", "median"),
        )
        g = g.reindex(range(len(self.classes))).round(4)
        return g.assign(**{"class": self.classes}).reset_index(drop=True)

    @property
    def _ends(self) -> np.ndarray:
        """Index of each drawing's last prefix."""
        return np.flatnonzero(np.append(self.drawing[1:] != self.drawing[:-1], True))

    def _stability(self, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per drawing: the area under its step curve, and where its stable right guess began."""
        n = len(self._ends)
        prev = np.zeros(len(self.fraction))
        prev[1:] = self.fraction[:-1]
        prev[np.append(True, self.drawing[1:] != self.drawing[:-1])] = 0
        auc = np.bincount(self.drawing, right * (self.fraction - prev), minlength=n)
        # The last wrong prefix of each drawing (-1 when none): the stable streak starts after it.
        position = np.arange(len(right))
        last_wrong = np.full(n, -1)
        np.maximum.at(last_wrong, self.drawing[~right], position[~right])
        first_right = np.maximum(last_wrong + 1, self._ends - self._counts + 1)
        stable = np.full(n, np.nan)
        early = first_right < self._ends
        stable[early] = self.fraction[first_right[early]]
        return auc, stable

    @property
    def _counts(self) -> np.ndarray:
        return np.bincount(self.drawing, minlength=len(self._ends))


@dataclass
class PrefixRecorder:
    """Scores every growing prefix of the drawings that pass through [`batches`][quickdraw.metrics.prefix.PrefixRecorder.batches].

    `proba(strokes) -> (B, C)` ([`quickdraw.inference.runner.predict_proba`][quickdraw.inference.runner.predict_proba]) is called on at most
    `chunk` prefixes at a time, prefixes of many drawings together.
    """

    by: str
    classes: list[str]
    proba: Callable[[StrokeBatch], np.ndarray]
    chunk: int = 512
    k: int = 3
    _parts: list[tuple] = field(default_factory=list)
    _drawings: int = 0

    def batches(self, batches: Iterable[tuple]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """`(probabilities of the finished drawings, labels)` for [`quickdraw.metrics.classification.score`][quickdraw.metrics.classification.score]."""
        for strokes, labels in batches:
            yield self.add(strokes, np.asarray(labels, np.int64)), labels

    def add(self, strokes: StrokeBatch, labels: np.ndarray) -> np.ndarray:
        """Score the prefixes of `strokes`; returns the (B, C) probabilities of the whole drawings."""
        prefixes, drawing, fraction = growing_prefixes(strokes, self.by)
        probs = [
            self.proba(prefixes.select(np.arange(i, min(i + self.chunk, len(prefixes)))))
            for i in range(0, len(prefixes), self.chunk)
        ]
        p = torch.as_tensor(np.concatenate(probs))
        top = p.topk(min(self.k, p.shape[1]), dim=1)
        self._parts.append(
            (drawing + self._drawings, fraction, labels[drawing], top.indices.numpy(),
             top.values[:, 0].numpy())
        )  # fmt: skip
        self._drawings += len(strokes)
        ends = np.append(np.flatnonzero(drawing[1:] != drawing[:-1]), len(drawing) - 1)
        return p.numpy()[ends]

    def scores(self) -> PrefixScores:
        cols = list(zip(*self._parts, strict=True)) or [[np.zeros(0)]] * 5
        drawing, fraction, labels, topk, top = (np.concatenate(c) for c in cols)
        return PrefixScores(
            self.by, list(self.classes), drawing.astype(np.int64), fraction,
            labels.astype(np.int64), topk.reshape(len(drawing), -1).astype(np.int64), top,
        )  # fmt: skip


def plot_prefix_curves(curves: Mapping[str, pd.DataFrame], metric: str = "top1") -> Figure:
    """Top-1 (or `metric`) against the share of the drawing seen, one line per named curve."""
    fig = Figure(figsize=(6.5, 4))
    ax = fig.add_subplot()
    for name, df in curves.items():
        for by, part in df.groupby("by"):
            label = name if df["by"].nunique() == 1 else f"{name} ({by})"
            ax.plot(part["fraction"], part[metric], marker="o", ms=3, label=label)
    by = sorted({b for df in curves.values() for b in df["by"].unique()})
    ax.set_xlabel(f"share of the drawing seen (by {', '.join(by)})")
    ax.set_ylabel(metric)
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("recognition of unfinished drawings")
    fig.tight_layout()
    return fig
