"""Entry point: ``python -m quickdraw.predict ckpt_path=... input=test_simplified.csv output=submission.csv`` (Kaggle format)."""

from __future__ import annotations

import csv
import logging
import os
import sys
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig
from tqdm.auto import tqdm

import quickdraw  # noqa: F401
from quickdraw.inference import (
    CheckpointError,
    InputStats,
    batch_proba,
    blank_proba,
    iter_input,
    load_model,
    raster_spec,
    write_unreadable,
)

log = logging.getLogger("quickdraw.predict")


def submission_word(name: str) -> str:
    """Kaggle wants one token per guess: spaces inside a class name become underscores."""
    return name.replace(" ", "_")


class UnreadableRows(ValueError):
    """strict=true and some rows' drawings cannot be read."""


def write_submission(
    model, input_path: str, output: Path, batch_size: int, strict: bool = False
) -> tuple[int, InputStats]:
    """Stream ``input_path`` through the model and write ``key_id,word`` rows with the top-3 guesses.

    One row per input row with a key_id, in input order. A drawing that cannot be read gets the
    model's guess for a blank canvas (:func:`~quickdraw.inference.blank_proba`) and is listed,
    with its line and reason, in ``<output>.unreadable.csv``; with ``strict`` it is an error
    (:class:`UnreadableRows`) and no file is written.
    """
    words = np.array([submission_word(c) for c in model.hparams.classes])
    spec = raster_spec(model)
    fallback = blank_proba(model, spec)
    stats = InputStats()
    tmp = output.with_name(f".{output.name}.tmp")
    n = 0
    try:
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["key_id", "word"])
            for batch in tqdm(
                iter_input(input_path, batch_size, stats), desc="predict", unit="batch"
            ):
                if strict and stats.unreadable:
                    raise UnreadableRows(_unreadable_message(stats, strict=True))
                top3 = np.argsort(-batch_proba(model, batch, spec, fallback), axis=1)[:, :3]
                w.writerows(
                    zip(batch.key_ids.tolist(), (" ".join(r) for r in words[top3]), strict=True)
                )
                n += len(top3)
        if strict and stats.unreadable:
            raise UnreadableRows(_unreadable_message(stats, strict=True))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, output)
    side = unreadable_path(output)
    if stats.unreadable:
        write_unreadable(side, stats.unreadable, " ".join(words[np.argsort(-fallback)[:3]]))
        log.warning(_unreadable_message(stats) + f"; listed in {side}")
    else:
        side.unlink(missing_ok=True)  # a stale list from an earlier run would mislead
    return n, stats


def unreadable_path(output: Path) -> Path:
    """Where the unreadable rows of a submission are listed: ``submission.unreadable.csv``."""
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


@hydra.main(version_base="1.3", config_path="../conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    output = Path(hydra.utils.to_absolute_path(cfg.output))
    try:
        model = load_model(hydra.utils.to_absolute_path(cfg.ckpt_path), cfg.device)
        n, stats = write_submission(
            model,
            hydra.utils.to_absolute_path(cfg.input),
            output,
            cfg.batch_size,
            cfg.get("strict", False),
        )
    except (CheckpointError, ValueError, FileNotFoundError) as e:
        log.error("%s", e)
        sys.exit(2)
    skipped = sum(stats.bad.values()) - len(stats.unreadable)
    print(
        f"{output}: {n} predictions"
        + (
            f"; {len(stats.unreadable)} unreadable drawings got the fallback guess "
            f"(listed in {unreadable_path(output)})"
            if stats.unreadable
            else ""
        )
        + (f"; {skipped} rows without a usable key_id skipped" if skipped else "")
    )


if __name__ == "__main__":
    main()
