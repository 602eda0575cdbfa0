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
    iter_input,
    predict_proba,
    raster_spec,
)
from quickdraw.onnx_backend import load_backend

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
    tmp = output.with_name(f".{output.name}.tmp")
    n = 0
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["key_id", "word"])
        for batch in tqdm(iter_input(input_path, batch_size, stats), desc="predict", unit="batch"):
            probs = predict_proba(model, batch.strokes, spec)
            top3 = np.argsort(-probs, axis=1)[:, :3]
            w.writerows(
                zip(batch.key_ids.tolist(), (" ".join(r) for r in words[top3]), strict=True)
            )
            n += len(top3)
    os.replace(tmp, output)
    return n, stats


@hydra.main(version_base="1.3", config_path="../conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    output = Path(hydra.utils.to_absolute_path(cfg.output))
    try:
        model = load_backend(
            hydra.utils.to_absolute_path(cfg.ckpt_path), cfg.backend, cfg.device, int8=cfg.int8
        )
        n, stats = write_submission(
            model, hydra.utils.to_absolute_path(cfg.input), output, cfg.batch_size
        )
    except (CheckpointError, ValueError, FileNotFoundError) as e:
        log.error("%s", e)
        sys.exit(2)
    skipped = sum(stats.bad.values())
    print(
        f"{output}: {n} predictions"
        + (f"; {skipped} unreadable rows skipped: {dict(stats.bad)}" if skipped else "")
    )


if __name__ == "__main__":
    main()
