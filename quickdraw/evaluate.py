"""Entry point: ``python -m quickdraw.evaluate ckpt_path=... input=...|store=...`` prints top-1/top-3/MAP@3, writes per-class results."""

from __future__ import annotations

import csv
import json
import logging
import sys
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy
from tqdm.auto import tqdm

import quickdraw  # noqa: F401
from quickdraw.data.sampling import fixed_rows
from quickdraw.data.store import Store, StoreError
from quickdraw.inference import (
    CheckpointError,
    InputStats,
    LabelMatcher,
    iter_input,
    load_labels,
    load_model,
    predict_proba,
    raster_spec,
    write_unreadable,
)
from quickdraw.models.metrics import MeanAveragePrecisionAtK
from quickdraw.utils import output_dir

log = logging.getLogger("quickdraw.evaluate")


def score(model, batches: Iterable[tuple], num_classes: int) -> tuple[dict[str, float], np.ndarray]:
    """Metrics over (strokes, labels) batches, plus a confusion matrix (true x predicted)."""
    metrics = MetricCollection(
        {
            "test/acc": MulticlassAccuracy(num_classes, top_k=1, average="micro"),
            "test/acc3": MulticlassAccuracy(
                num_classes, top_k=min(3, num_classes), average="micro"
            ),
            "test/map3": MeanAveragePrecisionAtK(k=3),
        }
    )
    confusion = np.zeros((num_classes, num_classes), np.int64)
    spec = raster_spec(model)
    for strokes, labels in batches:
        probs = torch.from_numpy(predict_proba(model, strokes, spec))
        target = torch.from_numpy(labels)
        metrics.update(probs, target)
        np.add.at(confusion, (labels, probs.argmax(1).numpy()), 1)
    return {k: float(v) for k, v in metrics.compute().items()}, confusion


def store_batches(store: Store, split: str, batch_size: int) -> Iterator[tuple]:
    index = store[split]
    rows = fixed_rows(index, None, seed=0)
    for start in tqdm(range(0, len(rows), batch_size), desc=f"{split}", unit="batch"):
        got = index.gather(rows[start : start + batch_size])
        yield got.strokes, got.labels


def file_batches(
    path: str,
    labels_path: str | None,
    matcher: LabelMatcher,
    batch_size: int,
    stats: InputStats,
    unreadable_labelled: set[int],
) -> Iterator[tuple]:
    """(strokes, labels) of the readable rows whose label names a class, in any accepted spelling.

    Labelled rows whose drawing cannot be read are not scored here but counted in
    ``stats.unreadable`` (with their line) and their key_ids added to ``unreadable_labelled``,
    to be counted as wrong by :func:`count_as_wrong`.
    """
    labels = load_labels(labels_path) if labels_path else None
    for batch in tqdm(iter_input(path, batch_size, stats), desc="evaluate", unit="batch"):
        words = [labels.get(int(k)) for k in batch.key_ids] if labels is not None else batch.words
        target = np.array([-1 if (c := matcher(w)) is None else c for w in words], np.int64)
        stats.bad["unlabelled_or_unknown_word"] += int((target < 0).sum())
        unreadable_labelled.update(batch.key_ids[~batch.readable & (target >= 0)].tolist())
        readable_target = target[batch.readable]
        known = readable_target >= 0
        if known.any():
            keep = np.flatnonzero(known)
            yield batch.strokes.select(keep), readable_target[keep]


def count_as_wrong(metrics: dict[str, float], scored: int, wrong: int) -> dict[str, float]:
    """Metrics over ``scored`` drawings, rescaled as if ``wrong`` more were scored and all missed.

    Every metric here is a mean over drawings of a 0..1 score, so an unreadable drawing adds 0.
    """
    total = scored + wrong
    return {k: (v * scored / total if total else 0.0) for k, v in metrics.items()}


def unmatched_message(matcher: LabelMatcher, classes: list[str]) -> str:
    r = matcher.report()
    return (
        f"{r['count']} labels name no class of the checkpoint (first: {', '.join(map(repr, r['first']))}); "
        f"matching ignores case, surrounding spaces and '_' for ' '. Classes: {', '.join(classes[:10])}"
        + (" ..." if len(classes) > 10 else "")
    )


def write_per_class(path: Path, classes: list[str], confusion: np.ndarray) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["class", "count", "accuracy", "most_confused_with", "confused_count"])
        for c, name in enumerate(classes):
            row = confusion[c].copy()
            n = int(row.sum())
            acc = row[c] / n if n else float("nan")
            row[c] = -1
            other = int(row.argmax())
            w.writerow(
                [
                    name,
                    n,
                    f"{acc:.4f}",
                    classes[other] if row[other] > 0 else "",
                    max(int(row[other]), 0),
                ]
            )


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
def main(cfg: DictConfig) -> dict[str, float]:
    try:
        model = load_model(hydra.utils.to_absolute_path(cfg.ckpt_path), cfg.device)
        classes = list(model.hparams.classes)
        stats = InputStats()
        matcher = LabelMatcher(classes)
        unreadable_labelled: set[int] = set()
        if cfg.input:
            batches = file_batches(
                hydra.utils.to_absolute_path(cfg.input),
                cfg.labels and hydra.utils.to_absolute_path(cfg.labels),
                matcher,
                cfg.batch_size,
                stats,
                unreadable_labelled,
            )
        elif cfg.store:
            store = Store(hydra.utils.to_absolute_path(cfg.store))
            if store.classes != classes:
                raise StoreError(
                    f"{cfg.store} has other classes than the checkpoint ({len(store.classes)} vs {len(classes)})"
                )
            batches = store_batches(store, cfg.split, cfg.batch_size)
        else:
            raise ValueError(
                "give input=FILE (with labels=CSV if it has no word column) or store=DIR"
            )
        metrics, confusion = score(model, batches, len(classes))
    except (CheckpointError, StoreError, ValueError, FileNotFoundError) as e:
        log.error("%s", e)
        sys.exit(2)
    if matcher.unmatched:
        log.warning("%s", unmatched_message(matcher, classes))
        if not matcher.matched:
            log.error("no label matches a class: nothing can be scored")
            sys.exit(2)
    scored = int(confusion.sum())
    wrong = [u for u in stats.unreadable if u.key_id in unreadable_labelled]
    n = scored + len(wrong)
    if n == 0:
        log.error("no labelled drawings to score (bad or unlabelled rows: %s)", dict(stats.bad))
        sys.exit(2)
    metrics = count_as_wrong(metrics, scored, len(wrong))
    out = output_dir(cfg)
    result = {
        **metrics,
        "drawings": n,
        "unreadable_counted_wrong": len(wrong),
        "skipped": dict(stats.bad),
        "unmatched_labels": matcher.report(),
        "unreadable": [asdict(u) for u in stats.unreadable[:100]],
        "ckpt_path": str(cfg.ckpt_path),
    }
    (out / "metrics.json").write_text(json.dumps(result, indent=1))
    write_per_class(out / "per_class.csv", classes, confusion)
    if stats.unreadable:
        write_unreadable(out / "unreadable.csv", stats.unreadable)
        first = ", ".join(f"line {u.line} ({u.reason})" for u in stats.unreadable[:5])
        log.warning(
            "%d drawings cannot be read (%s), %d of them labelled and counted as wrong; listed in %s",
            len(stats.unreadable),
            first,
            len(wrong),
            out / "unreadable.csv",
        )
    print(
        f"{n} drawings: top-1 {metrics['test/acc']:.4f}  top-3 {metrics['test/acc3']:.4f}  MAP@3 {metrics['test/map3']:.4f}"
        + (f" ({len(wrong)} unreadable, counted wrong)" if wrong else "")
    )
    print(f"per-class results: {out / 'per_class.csv'}")
    return metrics


if __name__ == "__main__":
    main()
