"""Evaluating a checkpoint on labelled drawings: an input file (with labels) or a split of a store.

``python -m quickdraw.evaluate`` (:mod:`quickdraw.cli`) calls :func:`evaluate`; the numbers come
from :func:`quickdraw.scoring.score`, the same definitions training logs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from quickdraw.data.sampling import fixed_rows
from quickdraw.data.store import Store, StoreError
from quickdraw.inference import InputStats, iter_input, load_labels, predict_proba, raster_spec
from quickdraw.runs import EVALUATE, RunDir
from quickdraw.scoring import Scores, score

log = logging.getLogger("quickdraw.evaluate")


def store_batches(store: Store, split: str, batch_size: int) -> Iterator[tuple]:
    """``(strokes, labels)`` batches of every row of ``split``, in the store's fixed order."""
    index = store[split]
    rows = fixed_rows(index, None, seed=0)
    for start in tqdm(range(0, len(rows), batch_size), desc=f"{split}", unit="batch"):
        got = index.gather(rows[start : start + batch_size])
        yield got.strokes, got.labels


def file_batches(
    path: str, labels_path: str | None, classes: list[str], batch_size: int, stats: InputStats
) -> Iterator[tuple]:
    """``(strokes, labels)`` batches of an input file; labels from its word column or ``labels_path``.

    Rows whose word is missing or names no class are counted in ``stats.bad``.
    """
    labels = load_labels(labels_path) if labels_path else None
    index = {c: i for i, c in enumerate(classes)}
    for batch in tqdm(iter_input(path, batch_size, stats), desc="evaluate", unit="batch"):
        words = [labels.get(int(k)) for k in batch.key_ids] if labels is not None else batch.words
        known = np.array([w in index for w in words], bool)
        stats.bad["unlabelled_or_unknown_word"] += int((~known).sum())
        if known.any():
            keep = np.flatnonzero(known)
            yield batch.strokes.select(keep), np.array([index[words[i]] for i in keep], np.int64)


def evaluate(
    model,
    out: str | Path,
    input: str | None = None,
    labels: str | None = None,
    store: str | None = None,
    split: str = "test",
    batch_size: int = 512,
    ckpt_path: str = "",
) -> tuple[Scores, dict[str, Any]]:
    """Score ``model`` on ``input`` (with ``labels``) or ``store``'s ``split``; write the evaluation folder.

    Writes ``out/metrics.json`` (kind ``evaluate``) and ``out/per_class.csv``. Raises ``ValueError``
    when neither input nor store is given or nothing labelled could be scored, ``StoreError``
    when the store's classes differ from the model's.
    """
    classes = list(model.hparams.classes)
    stats = InputStats()
    if input:
        batches = file_batches(input, labels, classes, batch_size, stats)
    elif store:
        st = Store(store)
        if st.classes != classes:
            raise StoreError(
                f"{store} has other classes than the checkpoint ({len(st.classes)} vs {len(classes)})"
            )
        batches = store_batches(st, split, batch_size)
    else:
        raise ValueError("give input=FILE (with labels=CSV if it has no word column) or store=DIR")
    spec = raster_spec(model)
    scores = score(lambda strokes: predict_proba(model, strokes, spec), batches, classes)
    if len(scores.labels) == 0:
        raise ValueError(
            f"no labelled drawings to score (bad or unlabelled rows: {dict(stats.bad)})"
        )
    run = RunDir(out)
    run.path.mkdir(parents=True, exist_ok=True)
    result = {
        **scores.metrics,
        "drawings": len(scores.labels),
        "skipped": dict(stats.bad),
        "ckpt_path": str(ckpt_path),
    }
    run.write_metrics(result, EVALUATE)
    scores.per_class_table().to_csv(run.per_class_file, index=False)
    return scores, result
