"""Evaluating a checkpoint on labelled drawings: an input file (with labels) or a split of a store.

`python -m quickdraw.evaluate` ([`quickdraw.cli`][quickdraw.cli]) calls [`evaluate`][quickdraw.evaluation.score.evaluate]; the numbers come
from [`quickdraw.metrics.classification.score`][quickdraw.metrics.classification.score], the same definitions training logs. With `prefix=strokes|
ink|time` every drawing is also scored on its growing prefixes ([`quickdraw.metrics.prefix`][quickdraw.metrics.prefix]),
and its finished form gives the plain metrics.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from quickdraw.core.errors import InputError, SettingError
from quickdraw.core.files import write_atomic, write_figure
from quickdraw.core.outputs import OverwriteError, refuse_overwrite
from quickdraw.core.runs import EVALUATE, RunDir
from quickdraw.data.formats.base import BadRow
from quickdraw.data.input_files import InputStats, iter_input, write_unreadable
from quickdraw.data.labels import LabelMatcher, load_labels
from quickdraw.data.listing import discover_sources
from quickdraw.data.prefixes import check_kind
from quickdraw.data.readers import iter_records
from quickdraw.data.sampling import fixed_rows
from quickdraw.data.store import Store, StoreError
from quickdraw.data.strokes import StrokeBatch
from quickdraw.inference.runner import check_tta, predict_proba
from quickdraw.metrics.balancing import balance as balance_scores
from quickdraw.metrics.balancing import load_prior
from quickdraw.metrics.classification import Scores, score
from quickdraw.metrics.prefix import PrefixRecorder, plot_prefix_curves

log = logging.getLogger("quickdraw.evaluate")


def store_batches(store: Store, split: str, batch_size: int) -> Iterator[tuple]:
    """`(strokes, labels)` batches of every row of `split`, in the store's fixed order."""
    index = store[split]
    rows = fixed_rows(index, None, seed=0)
    for start in tqdm(range(0, len(rows), batch_size), desc=f"{split}", unit="batch"):
        got = index.gather(rows[start : start + batch_size])
        yield got.strokes, got.labels


def require_labels(path: str, labels_path: str | None, max_bytes: int = 16 << 30) -> None:
    """Raise `ValueError` when `path` has no word column and no `labels_path` is given:
    nothing could be scored. Reads rows only up to the first one naming a class (one row for a
    labelled file), so that a forgotten `labels=` is said before a model is loaded."""
    if labels_path:
        return
    for source in discover_sources(path):
        for record in iter_records(source, max_bytes, require_word=False):
            # ndjson may hold any JSON value as its word: only a non-empty string names a class.
            if not isinstance(record, BadRow) and isinstance(record[2], str) and record[2]:
                return
    raise InputError(
        f"{path} has no word column (no row names its class), so there is nothing to score "
        "against: pass labels=FILE, a key_id,word CSV such as Kaggle's test_labels.csv"
    )


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
    `stats.unreadable` (with their line) and their key_ids added to `unreadable_labelled`,
    to be counted as wrong by [`count_as_wrong`][quickdraw.evaluation.score.count_as_wrong].
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


def balanced_batches(proba, batches, prior) -> list[tuple]:
    """One `(scores, labels)` batch: every batch's probabilities, balanced together."""
    probs, labels = [], []
    for strokes, target in batches:
        probs.append(proba(strokes))
        labels.append(np.asarray(target, np.int64))
    if not probs:
        return []
    return [(balance_scores(np.concatenate(probs), prior), np.concatenate(labels))]


def count_as_wrong(metrics: dict[str, float], scored: int, wrong: int) -> dict[str, float]:
    """Metrics over `scored` drawings, rescaled as if `wrong` more were scored and all missed.

    Every metric here is a mean over drawings of a 0..1 score, so an unreadable drawing adds 0.
    """
    total = scored + wrong
    return {k: (v * scored / total if total else 0.0) for k, v in metrics.items()}


def check_times(batches, prefix: str, name: str) -> Iterator[tuple[StrokeBatch, np.ndarray]]:
    """`batches` unchanged; for `prefix=time`, a `ValueError` naming the input when a
    batch has no per-point times."""
    for strokes, labels in batches:
        if prefix == "time" and strokes.times is None:
            raise InputError(
                f"prefix=time needs per-point times and {name} has none: only Google's raw ndjson "
                "(full/raw/<word>.ndjson) and Kaggle's raw CSV record them (simplified files, "
                ".bin, sketch-rnn .npz do not). Give such a file as input=, or use prefix=strokes "
                "or prefix=ink"
            )
        yield strokes, labels


def write_prefix_results(
    run: RunDir,
    recorder: PrefixRecorder,
    accept_threshold: float,
    result: dict,
    per_class: pd.DataFrame,
    wrong: int,
) -> pd.DataFrame:
    """prefix_curve.csv and .png, announcements.csv (the acceptance rule at each threshold), the
    early/* metrics and the announcement rows into `result`; per_class with early_* columns.

    Unreadable labelled drawings (`wrong`) count as never right in the early/* shares and AUCs,
    as in the plain metrics; the curve and the median fraction are over the drawings scored.
    """
    prefix_scores = recorder.scores()
    curve = prefix_scores.curve()
    write_atomic(run.prefix_curve_file, curve.to_csv(index=False))
    said = prefix_scores.announcements()
    write_atomic(run.announcements_file, said.to_csv(index=False))
    result["announcements"] = said.to_dict(orient="records")
    write_figure(plot_prefix_curves({run.path.name: curve}), run.prefix_curve_figure)
    early = prefix_scores.metrics(accept_threshold)
    shares = {k: v for k, v in early.items() if k.endswith(("auc_top1", "correct_before_end"))}
    early.update(count_as_wrong(shares, prefix_scores.drawings, wrong))
    result.update(early, prefix=recorder.by)
    classes = prefix_scores.per_class_table(accept_threshold)
    table = per_class.merge(classes, on="class", how="left")
    early_first, late_first = earliest_and_latest(table)
    log.info("guessed earliest: %s; latest: %s", ", ".join(early_first), ", ".join(late_first))
    return table


def earliest_and_latest(table: pd.DataFrame, k: int = 5) -> tuple[list[str], list[str]]:
    """Up to `k` classes with the highest and the lowest `early_auc_top1` (classes without
    drawings left out), never the same class in both: with fewer than 2k classes each list gets
    its half."""
    ranked = table.dropna(subset=["early_auc_top1"]).sort_values(
        "early_auc_top1", ascending=False, kind="stable"
    )
    names = list(ranked["class"])
    k = min(k, len(names) // 2)
    return names[:k], names[::-1][:k]


def unmatched_message(matcher: LabelMatcher, classes: list[str]) -> str:
    r = matcher.report()
    return (
        f"{r['count']} labels name no class of the checkpoint (first: {', '.join(map(repr, r['first']))}); "
        f"matching ignores case, surrounding spaces and '_' for ' '. Classes: {', '.join(classes[:10])}"
        + (" ..." if len(classes) > 10 else "")
    )


def refuse_overwrite_of(out: str | Path, **reads: str | None) -> None:
    """Refuse an evaluation folder `out` that holds a training run
    ([`RunDir.holds_training_run`][quickdraw.core.runs.RunDir.holds_training_run]), or whose files
    would replace a file or lie in a folder of `reads` (setting -> path)."""
    run = RunDir(out)
    if run.holds_training_run():
        raise OverwriteError(
            f"{run.path} is a training run's folder: the evaluation's metrics.json would replace "
            "the run's. Nothing was written. Leave hydra.run.dir out for a new folder"
        )
    files = [run.metrics_file, run.per_class_file, run.path / "unreadable.csv"]
    files += [run.prefix_curve_file, run.prefix_curve_figure]
    refuse_overwrite(
        {f"hydra.run.dir ({f.name})": f for f in files},
        reads,
        "Leave hydra.run.dir out for a new folder, or choose one without the inputs.",
    )


def evaluate(
    model,
    out: str | Path,
    input: str | None = None,
    labels: str | None = None,
    store: str | None = None,
    split: str = "test",
    batch_size: int = 512,
    ckpt_path: str = "",
    tta: str = "none",
    balance: bool = False,
    prior: str | None = None,
    prefix: str = "none",
    accept_threshold: float = 0.9,
) -> tuple[Scores, dict[str, Any]]:
    """Score `model` on `input` (with `labels`) or `store`'s `split`; write the evaluation folder.

    `tta`: test-time augmentation (`quickdraw.inference.runner.TTA_VIEWS`). `balance`: rescale
    the scores so that top-1 class counts match `prior` (a `word,count` CSV; uniform when None)
    before scoring ([`quickdraw.metrics.balancing`][quickdraw.metrics.balancing]): holds every probability in memory. `prefix`:
    `none`, or score growing prefixes by `strokes`, `ink` or `time` too
    ([`quickdraw.metrics.prefix`][quickdraw.metrics.prefix], with `accept_threshold` for the game-style rule).

    Writes `out/metrics.json` (kind `evaluate`; metrics count unreadable labelled drawings as
    wrong), `out/per_class.csv` and, when some drawings cannot be read, `out/unreadable.csv`
    (source, line, key_id, reason); with a prefix, `out/prefix_curve.csv` and `.png`, the
    `early/*` metrics and `early_*` columns in `per_class.csv`. Raises `ValueError` when
    neither input nor store is given, when the input has no word column and no labels are
    given ([`require_labels`][quickdraw.evaluation.score.require_labels]), when no label names a class, when nothing labelled could be
    scored, for `prefix=time` on drawings without times, or for a prefix with `balance`;
    `StoreError` when the store's classes differ from the model's; `OverwriteError` before
    any work when `out` is a training run's folder or a file written is one read.
    """
    refuse_overwrite_of(
        out, input=input, labels=labels, store=store, prior=prior, ckpt_path=ckpt_path
    )
    classes = list(model.hparams.classes)
    stats = InputStats()
    matcher = LabelMatcher(classes)
    unreadable_labelled: set[int] = set()
    if input:
        require_labels(input, labels)
        batches = file_batches(input, labels, matcher, batch_size, stats, unreadable_labelled)
    elif store:
        st = Store(store)
        if st.classes != classes:
            raise StoreError(
                f"{store} has other classes than the checkpoint ({len(st.classes)} vs {len(classes)})"
            )
        batches = store_batches(st, split, batch_size)
    else:
        raise SettingError(
            "give input=FILE (with labels=CSV if it has no word column) or store=DIR"
        )
    check_tta(tta)
    proba = lambda strokes: predict_proba(model, strokes, tta=tta)  # noqa: E731
    if balance and prefix != "none":
        raise SettingError(
            "balance=true re-ranks a whole set of finished drawings and means nothing for their "
            f"prefixes: evaluate prefix={prefix} without balance"
        )
    recorder = None
    if prefix != "none":
        recorder = PrefixRecorder(check_kind(prefix), classes, proba, chunk=batch_size)
        batches = recorder.batches(check_times(batches, prefix, input or f"{store} ({split})"))
        proba = lambda probs: probs  # noqa: E731  (the batch holds the finished drawings' scores)
    if balance:
        batches = balanced_batches(proba, batches, load_prior(prior, classes) if prior else None)
        proba = lambda probs: probs  # noqa: E731  (the batch already holds balanced scores)
    scores = score(proba, batches, classes)
    if matcher.unmatched:
        log.warning("%s", unmatched_message(matcher, classes))
        if not matcher.matched:
            raise InputError(
                "no label matches a class: nothing can be scored. "
                + unmatched_message(matcher, classes)
            )
    scored = len(scores.labels)
    wrong = [u for u in stats.unreadable if u.key_id in unreadable_labelled]
    if scored + len(wrong) == 0:
        raise InputError(
            f"no labelled drawings to score (bad or unlabelled rows: {dict(stats.bad)})"
        )
    run = RunDir(out)
    run.path.mkdir(parents=True, exist_ok=True)
    result = {
        **count_as_wrong(scores.metrics, scored, len(wrong)),
        "drawings": scored + len(wrong),
        "unreadable_counted_wrong": len(wrong),
        "skipped": dict(stats.bad),
        "unmatched_labels": matcher.report(),
        "unreadable": [asdict(u) for u in stats.unreadable[:100]],
        "ckpt_path": str(ckpt_path),
        "tta": tta,
        "balance": bool(balance),
        "prior": prior,
    }
    per_class = scores.per_class_table()
    if recorder is not None:
        per_class = write_prefix_results(
            run, recorder, accept_threshold, result, per_class, len(wrong)
        )
    run.write_metrics(result, EVALUATE)
    write_atomic(run.per_class_file, per_class.to_csv(index=False))
    if stats.unreadable:
        side = run.path / "unreadable.csv"
        write_unreadable(side, stats.unreadable)
        first = ", ".join(f"line {u.line} ({u.reason})" for u in stats.unreadable[:5])
        log.warning(
            "%d drawings cannot be read (%s), %d of them labelled and counted as wrong; listed in %s",
            len(stats.unreadable),
            first,
            len(wrong),
            side,
        )
    return scores, result
