"""Kaggle submissions: ``key_id,word`` rows with each drawing's top-3 guesses.

``python -m quickdraw.predict`` (:mod:`quickdraw.cli`) calls :func:`write_submission`.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from quickdraw.files import atomic_open
from quickdraw.inference import InputStats, iter_input, predict_proba, raster_spec

log = logging.getLogger("quickdraw.predict")


def submission_word(name: str) -> str:
    """Kaggle wants one token per guess: spaces inside a class name become underscores."""
    return name.replace(" ", "_")


def write_submission(
    model, input_path: str, output: Path, batch_size: int
) -> tuple[int, InputStats]:
    """Stream ``input_path`` through the model and write ``key_id,word`` rows with the top-3 guesses."""
    words = np.array([submission_word(c) for c in model.hparams.classes])
    spec = raster_spec(model)
    stats = InputStats()
    n = 0
    with atomic_open(output, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["key_id", "word"])
        for batch in tqdm(iter_input(input_path, batch_size, stats), desc="predict", unit="batch"):
            probs = predict_proba(model, batch.strokes, spec)
            top3 = np.argsort(-probs, axis=1)[:, :3]
            w.writerows(
                zip(batch.key_ids.tolist(), (" ".join(r) for r in words[top3]), strict=True)
            )
            n += len(top3)
    return n, stats
