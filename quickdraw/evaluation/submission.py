"""Kaggle submissions: `key_id,word` rows with each drawing's top-3 guesses.

`python -m quickdraw.predict` ([`quickdraw.cli`][quickdraw.cli]) calls [`write_submission`][quickdraw.evaluation.submission.write_submission].
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from quickdraw.core.errors import InputError
from quickdraw.core.files import atomic_open
from quickdraw.core.outputs import refuse_overwrite
from quickdraw.data.input_files import InputStats, iter_input, write_unreadable
from quickdraw.inference.runner import batch_proba, blank_proba, check_tta
from quickdraw.metrics.balancing import balance as balance_scores
from quickdraw.metrics.balancing import load_prior

log = logging.getLogger("quickdraw.predict")


def submission_word(name: str) -> str:
    """Kaggle wants one token per guess: spaces inside a class name become underscores."""
    return name.replace(" ", "_")


class UnreadableRows(InputError):
    """strict=true and some rows' drawings cannot be read."""


def write_submission(
    model,
    input_path: str,
    output: Path,
    batch_size: int,
    strict: bool = False,
    tta: str = "none",
    balance: bool = False,
    prior: str | None = None,
    ckpt_path: str | None = None,
) -> tuple[int, InputStats]:
    """Stream `input_path` through the model and write `key_id,word` rows with the top-3 guesses.

    One row per input row with a key_id, in input order; an input that lists a key_id twice is
    refused (ValueError naming both lines, no file written): Kaggle refuses such a submission.
    A drawing that cannot be read gets the model's guess for a blank canvas
    ([`blank_proba`][quickdraw.inference.runner.blank_proba]) and is listed, with its line and reason, in
    `<output>.unreadable.csv`; with `strict` it is an error ([`UnreadableRows`][quickdraw.evaluation.submission.UnreadableRows]) and no
    file is written.

    `tta`: test-time augmentation (`quickdraw.inference.runner.TTA_VIEWS`). `balance`: top-1
    class counts made to match `prior` (a `word,count` CSV; uniform when None) by
    [`quickdraw.metrics.balancing.balance`][quickdraw.metrics.balancing.balance]. Balancing needs every row's probabilities at once, so
    the input still streams but the (N, C) float32 matrix is held until the end (150 MB for
    Kaggle's 112 199 x 340 test set) and rows are written after it.

    Raises [`OverwriteError`][quickdraw.core.outputs.OverwriteError] before reading anything when `output`
    (or its unreadable list) is `input_path`, `prior` or `ckpt_path` (the model's file,
    only for the check) or lies inside an input folder.
    """
    refuse_overwrite(
        {"output": output, "output's unreadable list": unreadable_path(Path(output))},
        {"input": input_path, "prior": prior, "ckpt_path": ckpt_path},
        "Write the submission to another file (output=submission.csv).",
    )
    words = np.array([submission_word(c) for c in model.hparams.classes])
    check_tta(tta)
    prior_shares = load_prior(prior, list(model.hparams.classes)) if prior else None
    fallback = blank_proba(model)
    stats = InputStats()
    n = 0
    held: list[tuple[np.ndarray, np.ndarray]] = []  # (key_ids, probs) while balancing

    def write(key_ids: np.ndarray, probs: np.ndarray) -> int:
        top3 = np.argsort(-probs, axis=1)[:, :3]
        w.writerows(zip(key_ids.tolist(), (" ".join(r) for r in words[top3]), strict=True))
        return len(top3)

    with atomic_open(output, "w", newline="") as f:  # nothing under output's name on an error
        w = csv.writer(f)
        w.writerow(["key_id", "word"])
        for batch in tqdm(iter_input(input_path, batch_size, stats), desc="predict", unit="batch"):
            if strict and stats.unreadable:
                raise UnreadableRows(_unreadable_message(stats, strict=True))
            probs = batch_proba(model, batch, None, fallback, tta)
            if balance:
                held.append((batch.key_ids, probs))
            else:
                n += write(batch.key_ids, probs)
        if strict and stats.unreadable:
            raise UnreadableRows(_unreadable_message(stats, strict=True))
        if held:
            log.info(
                "balancing %d predictions over %d classes", sum(len(k) for k, _ in held), len(words)
            )
            probs = balance_scores(np.concatenate([p for _, p in held]), prior_shares)
            n += write(np.concatenate([k for k, _ in held]), probs)
    side = unreadable_path(output)
    if stats.unreadable:
        write_unreadable(side, stats.unreadable, " ".join(words[np.argsort(-fallback)[:3]]))
        log.warning(_unreadable_message(stats) + f"; listed in {side}")
    else:
        side.unlink(missing_ok=True)  # a stale list from an earlier run would mislead
    return n, stats


def unreadable_path(output: Path) -> Path:
    """Where the unreadable rows of a submission are listed: `submission.unreadable.csv`."""
    return output.with_name(f"{output.stem}.unreadable.csv")


def _unreadable_message(stats: InputStats, strict: bool = False) -> str:
    first = ", ".join(f"line {u.line} ({u.reason})" for u in stats.unreadable[:5])
    if strict:
        return (
            f"strict=true: {len(stats.unreadable)} drawings cannot be read ({first}); fix them, "
            "or drop strict=true to give them the fallback guess (the model's guess for a blank canvas)"
        )
    return (
        f"{len(stats.unreadable)} drawings cannot be read ({first}); "
        "they got the fallback guess (the model's guess for a blank canvas)"
    )
