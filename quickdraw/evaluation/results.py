"""What training runs left behind, read back: scores, configs, learning curves, quota histories,
prefix curves, and each run's best checkpoint scored per class.

The tables and figures of [`quickdraw.evaluation.report`][quickdraw.evaluation.report] and
[`quickdraw.evaluation.plots`][quickdraw.evaluation.plots] (and `notebooks/02_results.ipynb`)
are made from these.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from quickdraw.core.checkpoints import callback_state, read_checkpoint
from quickdraw.core.errors import MissingPathError
from quickdraw.core.files import atomic_open, json_text, write_atomic
from quickdraw.core.runs import RunDir, find_prefix_curves, find_runs
from quickdraw.data.sampling import fixed_rows
from quickdraw.data.sources import ensure_store_of
from quickdraw.data.store import Store, StoreError
from quickdraw.inference.runner import predict_proba
from quickdraw.metrics.classification import Scores, score
from quickdraw.models.loading import load_model

# metrics.json key -> column name in the comparison table
SCORES = {
    "test/acc": "top-1",
    "test/acc3": "top-3",
    "test/map3": "MAP@3",
    "test/acc_worst10": "worst-10% class acc",
    "val/map3_best": "best val MAP@3",
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


def prefix_curves(paths: Sequence[str | Path]) -> dict[str, pd.DataFrame]:
    """`prefix_curve.csv` of every run (latest validation, EarlyGuess callback) and evaluation
    (`prefix=...`) under `paths`, by folder name: `by,fraction,n,top1,top3,map3`."""
    return {name: pd.read_csv(path) for name, path in find_prefix_curves(paths).items()}
